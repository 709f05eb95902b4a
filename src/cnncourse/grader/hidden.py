"""nbgrader preprocessors that run hidden tests without expected values in the student's kernel.

Listed in ``nbgrader_config.py`` around nbgrader's ``Execute`` (``c.Autograde.autograde_preprocessors``), so
``nbgrader autograde``, ``cnncourse grade`` and ``cnncourse validate`` all do the same:

* :class:`PlaceCases` (before execution) writes this student's inputs for every ``hidden.check("<test>", ...)``
  of the test cells to ``.cnncourse_cases.json`` in the notebook's folder, the kernel's working directory.
* :class:`CheckAnswers` (after execution) reads the answers each hidden test published, checks them with the
  oracles of ``solutions/<assignment>/oracle.py``, removes them, and turns a wrong or missing answer -- or a
  submission that breaks the assignment's own-code rule -- into an error output ``HiddenTestFailed`` (the
  cell scores 0 and feedback shows the message). It records every graded test cell in
  ``resources["cnncourse"]["tests"][grade_id] = {"passed", "message", "hint"}`` for the class report, and
  deletes the cases file.

The Test dataclass, oracle loading and per-student seeds live in :mod:`cnncourse.grader.cases`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from nbformat import NotebookNode, read as read_notebook
from nbformat.v4 import new_output
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Unicode

from cnncourse.grader.cases import Oracle, Test, hidden_tests_in, load_oracle, student_cases
from cnncourse.testcells import wire
from cnncourse.testcells.hidden import CASES_FILE
from cnncourse.testcells.owncode import given_names, locked_cells, problems, student_cells

__all__ = ["PlaceCases", "CheckAnswers", "Test", "FAILED", "hint_of"]

FAILED = "HiddenTestFailed"
_HINT = "Likely cause:"
MAX_MESSAGE = 2000  # characters: a failure message quotes the student's answer, which may be megabytes


def _short(message: str) -> str:
    """``message`` cut to :data:`MAX_MESSAGE` characters (its ``Likely cause:`` line kept)."""
    if len(message) <= MAX_MESSAGE:
        return message
    hint = hint_of(message)
    tail = f"\n{_HINT} {hint[:300]}" if hint else ""
    return message[:MAX_MESSAGE - len(tail)] + " ... (cut)" + tail


def hint_of(message: str) -> str | None:
    """The text after ``Likely cause:`` in a failure message, if any."""
    _, found, rest = message.partition(_HINT)
    return rest.strip().splitlines()[0] if found and rest.strip() else None


def _source(cell: NotebookNode) -> str:
    return cell.source if isinstance(cell.source, str) else "".join(cell.source)


def _is_test_cell(cell: NotebookNode) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


class HiddenTestsPreprocessor(NbGraderPreprocessor):
    """Shared settings: where the course (its ``solutions/`` and secret) is."""

    course_root = Unicode("", help="The course directory holding solutions/<assignment>/oracle.py and "
                                   ".cnncourse/secret; default: CourseDirectory.root, else the working directory"
                          ).tag(config=True)

    def _root(self) -> Path:
        if self.course_root:
            return Path(self.course_root)
        configured = self.config.get("CourseDirectory", {}).get("root")
        return Path(configured) if configured else Path.cwd()

    def _context(self, resources: dict) -> tuple[str, str, Path]:
        """(assignment, student, notebook folder) of the notebook being graded."""
        folder = Path(resources.get("metadata", {}).get("path") or ".")
        info = resources.get("nbgrader", {})
        return (info.get("assignment") or folder.resolve().name, info.get("student") or "instructor", folder)

    def _oracle(self, assignment: str) -> Oracle | None:
        return load_oracle(self._root(), assignment)


class PlaceCases(HiddenTestsPreprocessor):
    """Write the student's hidden-test inputs to ``.cnncourse_cases.json`` next to the notebook."""

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        assignment, student, folder = self._context(resources)
        path = folder / CASES_FILE
        if path.exists() or path.is_symlink():
            path.unlink()  # never trust a cases file that came with the submission
        names = [name for cell in nb.cells if _is_test_cell(cell) for name in hidden_tests_in(_source(cell))]
        if not names:
            return nb, resources
        oracle = self._oracle(assignment)
        if oracle is None:
            raise FileNotFoundError(f"{assignment}: test cells call hidden.check but solutions/{assignment}/"
                                    f"oracle.py is missing under {self._root()}")
        # only the call's inputs reach the kernel: other keys of a case (labels, notes) stay in the grader
        tests = {name: [wire.encode({"args": case["args"], "kwargs": case["kwargs"]})
                        for case in student_cases(oracle, name, student, self._root())]
                 for name in dict.fromkeys(names)}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"assignment": assignment, "tests": tests}, f)
        return nb, resources


class CheckAnswers(HiddenTestsPreprocessor):
    """Check the published answers with the oracles; fail the cells whose answers are wrong or missing."""

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        assignment, student, folder = self._context(resources)
        (folder / CASES_FILE).unlink(missing_ok=True)
        oracle = self._oracle(assignment)
        own = self._own_code_problems(nb, oracle, resources) if oracle else []
        record = resources.setdefault("cnncourse", {}).setdefault("tests", {})
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            answers = [o for o in cell.get("outputs", []) if wire.MIME in o.get("data", {})]
            cell.outputs = [o for o in cell.get("outputs", []) if wire.MIME not in o.get("data", {})]
            if not _is_test_cell(cell):
                continue
            names = hidden_tests_in(_source(cell))
            errors = [o for o in cell.outputs if o.output_type == "error"]
            message = None
            if names and oracle is not None and not errors:
                message = self._verdict(oracle, names, [o["data"][wire.MIME] for o in answers], own,
                                        student, assignment)
                if message:
                    cell.outputs.append(new_output("error", ename=FAILED, evalue=message, traceback=[]))
            if errors:
                message = _short(f"{errors[0].get('ename', 'Error')}: {errors[0].get('evalue', '')}")
            grade_id = cell.metadata["nbgrader"].get("grade_id", "")
            record[grade_id] = {"passed": message is None, "message": message or "",
                                "hint": hint_of(message) if message else None}
        return nb, resources

    def _own_code_problems(self, nb: NotebookNode, oracle: Oracle, resources: dict) -> list[str]:
        """Violations of the oracle's own-code rule in the cells the student can edit."""
        trusted, given_by = None, nb
        name = resources.get("nbgrader", {}).get("notebook") or resources.get("unique_key")
        source = oracle.source_dir / f"{name}.ipynb"
        if name and source.exists():
            given_by = ref = read_notebook(str(source), as_version=4)
            trusted = {c.metadata["nbgrader"]["grade_id"] for c in ref.cells
                       if c.metadata.get("nbgrader", {}).get("grade_id")
                       and not c.metadata["nbgrader"].get("solution")}
        # names the locked cells import from refused modules (`os`, torch's `conv2d`) are refused too
        given = given_names(locked_cells(given_by, trusted), oracle.rules)
        return problems(student_cells(nb, trusted), oracle.rules, given)

    def _verdict(self, oracle: Oracle, names: list[str], published: list[Any], own: list[str], student: str,
                 assignment: str) -> str | None:
        """The failure message of one test cell, or None when every hidden case passed."""
        if own:
            return ("hidden tests not run: your code breaks this assignment's rule (" + oracle.rules.describe()
                    + "):\n  " + "\n  ".join(own[:5]))
        for name in names:
            mine = [p for p in published if isinstance(p, dict) and p.get("test") == name]
            if len(mine) != 1:
                return (f"hidden test {name}: no answers came back" if not mine else
                        f"hidden test {name}: answers were published {len(mine)} times (only the test may publish)")
            if len(json.dumps(mine[0])) > 2 * wire.MAX_BYTES:  # base64 inflates the cap by 4/3
                return f"hidden test {name}: the answers are too large (return only what the exercise asks for)"
            cases = student_cases(oracle, name, student, self._root())
            try:
                results = wire.decode(mine[0].get("results"))
            except Exception as exc:  # a forged payload
                return f"hidden test {name}: unreadable answers ({type(exc).__name__})"
            if not isinstance(results, list) or len(results) != len(cases):
                return f"hidden test {name}: expected {len(cases)} answers, got a different number"
            message = self._check_all(name, oracle.tests[name], cases, results)
            if message:
                return message
        return None

    @staticmethod
    def _check_all(name: str, test: Test, cases: list[dict], results: list[Any]) -> str | None:
        failures = []
        for case, got in zip(cases, results):
            try:
                message = test.check(case, got)
            except Exception as exc:  # an answer the oracle could not even compare
                message = f"your answer {wire.Unencodable(type(got).__name__)} could not be checked ({exc})"
            if message:
                failures.append(_short(str(message)))
        if not failures:
            return None
        return f"hidden test {name}: {len(failures)} of {len(cases)} cases wrong. First: {failures[0]}"
