"""Hidden tests, instructor side: the oracle file of an assignment and each student's inputs.

``solutions/<assignment>/oracle.py`` (instructor only: never released, like any ``oracle_*.py`` module
beside it that it imports) defines ``TESTS: dict[str, Test]`` and optionally ``RULES``, the
:class:`~cnncourse.testcells.owncode.OwnCode` rule its hidden tests apply.
A :class:`Test` draws the inputs of one student from a ``numpy.random.Generator`` seeded by
HMAC(course secret, ``assignment/student/test``) and checks each answer with torch oracles computed here,
in the grader process: the student's kernel receives the inputs and nothing else.
"""
from __future__ import annotations

import ast
import functools
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import numpy as np

from cnncourse.grader.secret import course_secret, student_seed
from cnncourse.testcells.compare import describe
from cnncourse.testcells.owncode import OwnCode
from cnncourse.testcells.wire import RaisedError

__all__ = ["Test", "Oracle", "load_oracle", "hidden_tests_in", "student_cases", "ORACLE_FILE", "call_text",
           "shown", "int_problem", "wrong_answer"]

ORACLE_FILE = "oracle.py"


@dataclass(frozen=True)
class Test:
    """One hidden test: ``cases(rng) -> [{"args": [...], "kwargs": {...}}, ...]`` and
    ``check(case, got) -> None | message``. A message names the inputs and, on a line
    ``Likely cause: ...``, the recognised mistake; it never contains the expected value."""

    cases: Callable[[np.random.Generator], list[dict]]
    check: Callable[[dict, Any], str | None]


@dataclass(frozen=True)
class Oracle:
    """The hidden tests of one assignment and the own-code rule they apply."""

    assignment: str
    tests: dict[str, Test]
    rules: OwnCode
    source_dir: Path


def load_oracle(root: str | Path, assignment: str) -> Oracle | None:
    """Import ``<root>/solutions/<assignment>/oracle.py`` (``None`` when the assignment has none)."""
    folder = (Path(root) / "solutions" / assignment).resolve()
    if not (folder / ORACLE_FILE).exists():
        return None
    stamp = tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(folder.glob("oracle*.py")))
    from cnncourse.grader import verdicts  # a grading run shares each verdict among its workers

    return verdicts.share(_import_oracle(folder, assignment, stamp))


@functools.lru_cache(maxsize=8)
def _import_oracle(folder: Path, assignment: str, stamp: tuple) -> Oracle:
    """The oracle of ``folder``, imported once per process and version (``stamp``: the oracle files' names,
    modification times and sizes): PlaceCases and CheckAnswers ask for it for every notebook, and a grading
    run's preload imports it before forking its workers, so they inherit it."""
    path = folder / ORACLE_FILE
    name = f"_cnncourse_oracle_{assignment}"
    spec = importlib.util.spec_from_file_location(name, path)
    module: ModuleType = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling need the module registered
    before = set(sys.modules)
    sys.path.insert(0, str(folder))  # oracle.py may import its oracle_*.py siblings
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
        for extra in set(sys.modules) - before:  # siblings of another assignment may share a name
            if str(getattr(sys.modules[extra], "__file__", "") or "").startswith(str(folder)):
                del sys.modules[extra]
    tests = getattr(module, "TESTS", None)
    if not isinstance(tests, dict) or not all(isinstance(t, Test) for t in tests.values()):
        raise ValueError(f"{path} must define TESTS = {{name: Test(cases=..., check=...)}}")
    rules = getattr(module, "RULES", OwnCode())
    if not isinstance(rules, OwnCode):
        raise ValueError(f"{path}: RULES must be a cnncourse.testcells.owncode.OwnCode, got {type(rules).__name__}")
    return Oracle(assignment=assignment, tests=dict(tests), rules=rules, source_dir=folder)


def hidden_tests_in(source: str) -> list[str]:
    """The test names of the ``hidden.check("<name>", ...)`` calls in a test cell, in order."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "check"
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "hidden" and node.args
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            names.append((node.lineno, node.col_offset, node.args[0].value))
    return [name for *_, name in sorted(names)]


def student_cases(oracle: Oracle, test: str, student: str, root: str | Path) -> list[dict]:
    """The inputs of ``test`` for ``student``: the same on every grading, different between students."""
    if test not in oracle.tests:
        raise KeyError(f"hidden test {test!r} is not in {oracle.source_dir / ORACLE_FILE} "
                       f"(it defines {sorted(oracle.tests)})")
    seed = student_seed(course_secret(root), oracle.assignment, student, test)
    cases = oracle.tests[test].cases(np.random.default_rng(seed))
    for case in cases:
        case.setdefault("args", [])
        case.setdefault("kwargs", {})
    return cases


# ---- messages for oracles' checks: name the call and the answer, never the expected value
def call_text(fn: str, case: dict) -> str:
    """``fn(1, 2, stride=3)`` for a case's arguments."""
    parts = [repr(a) for a in case.get("args", [])] + [f"{k}={v!r}" for k, v in case.get("kwargs", {}).items()]
    return f"{fn}({', '.join(parts)})"


def shown(got: Any) -> str:
    """A returned value as a student reads it: plain values as ``repr``, anything else described."""
    return repr(got) if type(got) in (int, float, str, bool, tuple, list, type(None)) else describe(got)


def int_problem(call: str, got: Any) -> str | None:
    """The message for an answer that should be a Python int but raised or is another type, else None."""
    if isinstance(got, RaisedError):
        return f"{call} raised {got}, but this configuration is valid"
    if type(got) is not int:
        return f"{call} returned {describe(got)}: return a Python int (not a float, bool or numpy number)"
    return None


def wrong_answer(call: str, got: Any, hint: str | None = None) -> str:
    """``call returned X, which is wrong`` and, when a mistake was recognised, ``Likely cause: hint``."""
    return f"{call} returned {shown(got)}, which is wrong" + (f"\nLikely cause: {hint}" if hint else "")
