"""The "your own code" rule, one implementation for the notebook's visible test and for the grader.

A rule says which modules a student's cells may import (``allowed``: an allow-list, or ``None`` for any)
and which they must not (``forbidden``: e.g. ``("torch", "cnncourse")``). Always refused, whatever the
rule: dynamic imports and introspection (``__import__``, ``importlib``, ``eval``/``exec``/``compile``,
``globals()``, ``getattr``, ``sys``, ``gc``, ``inspect``, frame, class and function internals such as
``f_back``, ``__class__`` or ``__globals__``), and IPython magics or shell commands unless ``magics=True``.

The grader applies :func:`problems` to the submitted source of every cell the student can edit (the
source notebook's locked cells are trusted); the notebook's visible test applies the same check to the
saved notebook with :func:`check_notebook`, so a student sees the rule fail before grading.
"""
from __future__ import annotations

import ast
import json
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["OwnCode", "problems", "student_cells", "check_notebook"]

_DYNAMIC_NAMES = frozenset({"__import__", "eval", "exec", "compile", "globals", "locals", "vars", "getattr",
                            "setattr", "delattr", "__builtins__", "breakpoint", "get_ipython", "__loader__",
                            "__spec__"})
_INTROSPECTION_MODULES = ("importlib", "builtins", "sys", "gc", "inspect", "ctypes", "runpy", "subprocess",
                          "pickle", "marshal", "types", "code", "codeop", "pydoc", "dis", "linecache", "IPython")
_INTERNAL_ATTRS = frozenset({"__globals__", "__code__", "__closure__", "__builtins__", "__subclasses__",
                             "__loader__", "__spec__", "f_back", "f_globals", "f_locals", "f_builtins",
                             "tb_frame", "gi_frame", "cr_frame", "ag_frame", "sys", "__dict__", "__class__",
                             "__bases__", "__base__", "__mro__"})


@dataclass(frozen=True)
class OwnCode:
    """What a student's cells may use: ``allowed`` imports (``None`` = any not forbidden), ``forbidden``
    packages (also as bare names, e.g. a ``torch`` left in the kernel by another cell), IPython ``magics``."""

    allowed: tuple[str, ...] | None = None
    forbidden: tuple[str, ...] = ()
    magics: bool = False

    def describe(self) -> str:
        """The rule in one sentence, for messages."""
        parts = []
        if self.allowed is not None:
            parts.append("import only " + (", ".join(self.allowed) if self.allowed else "nothing"))
        if self.forbidden:
            parts.append("no " + ", no ".join(self.forbidden))
        parts.append("no dynamic imports or introspection (__import__, importlib, eval, exec, globals, getattr, "
                     "sys, gc, inspect, frames)" + ("" if self.magics else ", no % magics or ! shell commands"))
        return "; ".join(parts)


def _under(module: str, roots: tuple[str, ...]) -> bool:
    return any(module == r or module.startswith(r + ".") for r in roots)


def _python(source: str) -> ast.AST | None:
    """The cell as Python (IPython magics become ``get_ipython()`` calls); None if it is not valid code
    (such a cell runs nothing)."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        source = TransformerManager().transform_cell(source)
    except Exception:  # IPython missing or an odd cell: parse it as plain Python
        pass
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError):
        return None


def problems(sources: list[str], rule: OwnCode) -> list[str]:
    """Every violation of ``rule`` in the cells ``sources`` (empty when the code follows it)."""
    forbidden = tuple(rule.forbidden) + _INTROSPECTION_MODULES
    found: list[str] = []
    for number, source in enumerate(sources, 1):
        tree = _python(source)
        if tree is None:
            continue
        lines = source.splitlines()
        for node in sorted(ast.walk(tree), key=lambda n: (getattr(n, "lineno", 0), getattr(n, "col_offset", 0))):
            lineno = getattr(node, "lineno", 0)
            text = lines[lineno - 1].strip()[:70] if 0 < lineno <= len(lines) else ""
            where = f"your code cell {number}, line {lineno} `{text}`"
            modules: list[str] = []
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [("." * node.level) + (node.module or "")]
            for module in modules:
                if module.startswith(".") or _under(module, forbidden) or (
                        rule.allowed is not None and not _under(module, tuple(rule.allowed))):
                    found.append(f"{where}: `import {module}` is not allowed")
            if isinstance(node, ast.Name):
                if node.id == "get_ipython" and rule.magics:
                    continue
                if node.id in _DYNAMIC_NAMES:
                    what = "`get_ipython` (IPython magics and shell commands)" if node.id == "get_ipython" \
                        else f"`{node.id}`"
                    found.append(f"{where}: {what} is not allowed")
                elif _under(node.id, tuple(rule.forbidden)):
                    found.append(f"{where}: uses `{node.id}`, which is not allowed")
            elif isinstance(node, ast.Attribute) and node.attr in _INTERNAL_ATTRS:
                found.append(f"{where}: `.{node.attr}` (interpreter internals) is not allowed")
    return list(dict.fromkeys(found))


def student_cells(nb: dict, trusted_ids: set[str] | None = None) -> list[str]:
    """Sources of the code cells a student can edit: solution cells and cells without nbgrader metadata.

    ``trusted_ids``: the grade ids of the source notebook's locked cells; a cell claiming to be locked with
    another id is the student's own. Without it, any locked or graded non-solution cell is trusted.
    """
    out = []
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        meta = cell.get("metadata", {}).get("nbgrader", {})
        locked = (meta.get("locked") or meta.get("grade")) and not meta.get("solution")
        if locked and (trusted_ids is None or meta.get("grade_id") in trusted_ids):
            continue
        source = cell.get("source", "")
        out.append("".join(source) if isinstance(source, list) else source)
    return out


def check_notebook(notebook: str, rule: OwnCode) -> None:
    """Visible test of the rule: raise ``AssertionError`` listing each violation in the SAVED notebook
    ``notebook`` (a path relative to the kernel's folder). Under the grader without the file, it does
    nothing (the grader applies the same check to the submission itself)."""
    path = Path(notebook)
    if not path.exists():
        if os.environ.get("NBGRADER_EXECUTION"):
            return
        raise AssertionError(f"cannot find {notebook} next to this kernel: open the notebook from its "
                             "assignment folder and save it before running this test")
    found = problems(student_cells(json.loads(path.read_text(encoding="utf-8"))), rule)
    if found:
        raise AssertionError("your own code rule (" + rule.describe() + ") is broken in the saved notebook:\n  "
                             + "\n  ".join(found) + "\n(the hidden tests give 0 points while this fails; save "
                             "the notebook after fixing it)")
