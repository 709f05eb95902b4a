"""Feedback that never shows hidden tests or reference solutions (a ``GenerateFeedback`` preprocessor).

:class:`ScrubHidden` is listed in ``c.GenerateFeedback.preprocessors`` in ``nbgrader_config.py``:

* test cells lose their hidden-test region and keep only their failure message (a passing test cell shows
  no output at all): whatever the student's code printed or displayed while a test ran is dropped;
* in every other output (streams, error messages and tracebacks, text and HTML of rich outputs) any line
  that is, or contains, a line of a hidden test, of a reference solution (``solutions/<assignment>``) or of
  the assignment's ``oracle.py`` is removed. That covers a submission printing ``In[-1]`` or ``In[k]``,
  raising an exception whose message is a test's source, or rendering it as HTML.
"""
from __future__ import annotations

import html
import json
import re
from pathlib import Path

from nbformat import NotebookNode, read as read_notebook

from cnncourse.grader.cases import ORACLE_FILE
from cnncourse.grader.hidden import HiddenTestsPreprocessor, _is_test_cell, _source

__all__ = ["ScrubHidden", "protected_lines", "scrub_text"]

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_TAG = re.compile(r"<[^>]+>")
_REGIONS = (("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"), ("### BEGIN SOLUTION", "### END SOLUTION"))
_MIN_EQUAL = 4  # shorter lines ("else:", "pass") are too common to tell anything
_MIN_CONTAINED = 16  # a protected line this long is removed wherever it appears inside an output line


def _regions(source: str, begin: str, end: str) -> list[str]:
    lines, inside, out = source.splitlines(), False, []
    for line in lines:
        if line.strip().startswith(begin):
            inside = True
        elif line.strip().startswith(end):
            inside = False
        elif inside:
            out.append(line)
    return out


def protected_lines(solution_dir: Path) -> set[str]:
    """Stripped lines of every hidden-test and solution region (and their markers) of the source notebooks in
    ``solution_dir``, and of its ``oracle.py`` and ``oracle_*.py``."""
    lines: list[str] = [marker for region in _REGIONS for marker in region]
    for path in sorted(solution_dir.glob("*.ipynb")):
        for cell in read_notebook(str(path), as_version=4).cells:
            for begin, end in _REGIONS:
                lines += _regions(_source(cell), begin, end)
    for oracle in [solution_dir / ORACLE_FILE, *sorted(solution_dir.glob("oracle_*.py"))]:
        if oracle.exists():
            lines += oracle.read_text(encoding="utf-8").splitlines()
    return {line.strip() for line in lines if len(line.strip()) >= _MIN_EQUAL}


def _normal(line: str) -> str:
    return html.unescape(_TAG.sub("", _ANSI.sub("", line))).strip()


def scrub_text(text: str, protected: set[str]) -> str:
    """``text`` without the lines that equal or contain a protected line."""
    long = [p for p in protected if len(p) >= _MIN_CONTAINED]
    kept = []
    for line in text.splitlines(keepends=True):
        norm = _normal(line)
        if norm in protected or any(p in norm for p in long):
            continue
        kept.append(line)
    return "".join(kept)


def _strip_hidden(source: str) -> str:
    lines, inside, out = source.splitlines(keepends=True), False, []
    for line in lines:
        if line.strip().startswith("### BEGIN HIDDEN TESTS"):
            inside = True
        elif line.strip().startswith("### END HIDDEN TESTS"):
            inside = False
        elif not inside:
            out.append(line)
    return "".join(out)


class ScrubHidden(HiddenTestsPreprocessor):
    """Remove hidden tests and solution text from the notebook a student receives as feedback."""

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        assignment, _, _ = self._context(resources)
        folder = self._root() / "solutions" / assignment
        protected = protected_lines(folder) if folder.is_dir() else set()
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            if _is_test_cell(cell):
                cell.source = _strip_hidden(_source(cell))
                cell.outputs = self._failure_only(cell.get("outputs", []), protected)
            else:
                cell.outputs = [self._scrub(o, protected) for o in cell.get("outputs", [])]
        return nb, resources

    @staticmethod
    def _failure_only(outputs: list, protected: set[str]) -> list:
        for out in outputs:
            if out.output_type == "error":
                message = scrub_text(f"{out.get('ename', 'Error')}: {out.get('evalue', '')}", protected)
                out.evalue = scrub_text(str(out.get("evalue", "")), protected)
                out.traceback = message.splitlines()
                return [out]
        return []

    @staticmethod
    def _scrub(out: NotebookNode, protected: set[str]) -> NotebookNode:
        if out.output_type == "stream":
            out.text = scrub_text(out.text, protected)
        elif out.output_type == "error":
            out.evalue = scrub_text(str(out.get("evalue", "")), protected)
            out.traceback = [line for line in out.get("traceback", []) if scrub_text(line, protected) == line]
        elif out.output_type in ("display_data", "execute_result"):
            for mime, value in list(out.get("data", {}).items()):
                if mime.startswith("image/") and mime != "image/svg+xml":
                    continue
                if isinstance(value, (str, list)):
                    out.data[mime] = scrub_text(value if isinstance(value, str) else "".join(value), protected)
                elif scrub_text(json.dumps(value, indent=1), protected) != json.dumps(value, indent=1):
                    del out.data[mime]  # structured data (JSON) holding protected text
        return out
