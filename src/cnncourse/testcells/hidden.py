"""Hidden tests, kernel side: call the student's function on the grader's inputs and hand back the results.

A hidden test cell is one call::

    from cnncourse.testcells import hidden
    hidden.check("out_size", lambda size, kernel, stride, padding: out_size(size, kernel, stride, padding))

The grader (``cnncourse.grader.hidden.PlaceCases``) writes this student's inputs to :data:`CASES_FILE` in
the kernel's working directory before the notebook runs. :func:`check` calls ``fn(*args, **kwargs)`` for
every case of the test, captures each return value or exception, and publishes one display output of MIME
type :data:`~cnncourse.testcells.wire.MIME`. The grader decodes it, computes the expected values itself
(torch oracles, outside the kernel) and fails the cell with a message when an answer is wrong. So there is
no expected value anywhere in the kernel for a submission to find.

:func:`check` prints nothing, writes nothing to stderr (the student's stderr and warnings are swallowed
while their code runs) and never raises because an answer is wrong.
"""
from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path
from typing import Any, Callable

from cnncourse.testcells import wire

__all__ = ["check", "run_cases", "load_cases", "CASES_FILE"]

CASES_FILE = ".cnncourse_cases.json"


def load_cases(test: str, folder: str | Path = ".") -> list[dict]:
    """The decoded cases (``{"args": [...], "kwargs": {...}}``) the grader placed for ``test``.

    Raises ``RuntimeError`` when there is no cases file (hidden tests run only under the grader) or when it
    has no cases for ``test``.
    """
    path = Path(folder) / CASES_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RuntimeError(f"hidden test {test!r}: no {CASES_FILE} here. Hidden tests run only when the "
                           "notebook is graded (nbgrader autograde / cnncourse grade / cnncourse validate); "
                           "the visible tests above check your answers while you work.") from None
    tests = json.loads(text).get("tests", {})
    if test not in tests:
        raise RuntimeError(f"hidden test {test!r}: the grader placed no cases for it in {CASES_FILE} "
                           f"(cases exist for {sorted(tests)})")
    return [wire.decode(case) for case in tests[test]]


def run_cases(test: str, fn: Callable[..., Any], cases: list[dict]) -> dict:
    """``{"test": test, "results": [encoded return value or exception, ...]}`` for ``fn`` on ``cases``.

    The student's output to stderr and their warnings are discarded while ``fn`` runs (any stderr output
    scores a test cell 0 in nbgrader). Results larger than :data:`wire.MAX_BYTES` in total are replaced
    by a ``ValueError`` each.
    """
    results = []
    for case in cases:
        try:
            with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
                warnings.simplefilter("ignore")
                got = fn(*case.get("args", []), **case.get("kwargs", {}))
        except Exception as exc:  # the grader reports it; SystemExit/KeyboardInterrupt stop the cell
            got = exc
        results.append(got)
    try:
        encoded = wire.encode(results)
    except ValueError as exc:
        encoded = [wire.encode(exc) for _ in results]
    return {"test": test, "results": encoded}


def check(test: str, fn: Callable[..., Any]) -> None:
    """Run hidden test ``test``: call ``fn`` on this student's cases and publish the results for the grader."""
    from IPython.display import display

    answers = run_cases(test, fn, load_cases(test))
    display({wire.MIME: answers}, raw=True)
