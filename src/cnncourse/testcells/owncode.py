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
import functools
import importlib.machinery
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["OwnCode", "problems", "given_names", "student_cells", "locked_cells", "check_notebook"]

_DYNAMIC_NAMES = frozenset({"__import__", "eval", "exec", "compile", "globals", "locals", "vars", "getattr",
                            "setattr", "delattr", "__builtins__", "breakpoint", "get_ipython", "__loader__",
                            "__spec__"})
_INTROSPECTION_MODULES = ("importlib", "builtins", "sys", "gc", "inspect", "ctypes", "runpy", "subprocess",
                          "pickle", "marshal", "types", "code", "codeop", "pydoc", "dis", "linecache", "IPython",
                          # modules that import a module named in a string, or run code from a string or a file:
                          # pkgutil.resolve_name, operator.attrgetter, timeit/cProfile/doctest, mock.patch, ...
                          "operator", "pkgutil", "zipimport", "timeit", "doctest", "cProfile", "profile", "trace",
                          "pdb", "bdb", "shelve", "copyreg", "dill", "joblib", "cloudpickle", "site", "unittest",
                          "logging.config",
                          # running another program (a python that imports what the rule forbids)
                          "posix", "pty", "asyncio", "webbrowser")
_INTERNAL_ATTRS = frozenset({"__globals__", "__code__", "__closure__", "__builtins__", "__subclasses__",
                             "__loader__", "__spec__", "f_back", "f_globals", "f_locals", "f_builtins",
                             "tb_frame", "gi_frame", "cr_frame", "ag_frame", "sys", "__dict__", "__class__",
                             "__bases__", "__base__", "__mro__",
                             # modules re-exported by numpy and torch (np.f2py.os, torch.importlib, N.builtins, ...)
                             "os", "builtins", "importlib", "inspect", "ctypes", "pickle", "marshal", "gc",
                             "subprocess", "runpy", "hub", "load_inline",
                             # building or loading native code, running a string, importing a string:
                             # np.f2py, np.ctypeslib.load_library, np.testing.extbuild, torch.utils.cpp_extension,
                             # torch.utils.collect_env.run, torch.utils.benchmark.Timer(stmt=...),
                             # typing.get_type_hints (evaluates string annotations)
                             "f2py", "ctypeslib", "load_library", "extbuild", "build_and_import_extension",
                             "cpp_extension", "collect_env", "benchmark", "get_type_hints", "attrgetter",
                             "methodcaller", "resolve_name", "import_module", "package", "load_pickle",
                             # os.system & co. run another program (a python importing what the rule forbids)
                             "system", "popen", "execl", "execle", "execlp", "execlpe", "execv", "execve",
                             "execvp", "execvpe", "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve",
                             "spawnvp", "spawnvpe", "posix_spawn", "posix_spawnp", "fork", "forkpty"})
# The dunder attributes honest code uses; any other (``__getattribute__``, ``__self__``, ``__reduce__``, ...)
# reaches interpreter internals. Private ``_x`` attributes are refused except on ``self``/``cls`` (numpy's
# ``np._core.function_base._nx.builtins``, ``collections._sys``, ...).
_PLAIN_DUNDERS = frozenset({"__init__", "__name__", "__qualname__", "__doc__", "__len__", "__call__", "__iter__",
                            "__next__", "__getitem__", "__setitem__", "__contains__", "__repr__", "__str__",
                            "__eq__", "__version__"})
_PICKLE_KEYWORDS = frozenset({"allow_pickle", "weights_only"})  # np.load / torch.load running pickled code
_HELPER_MODULES = ("cnncourse.testcells", "cnncourse.plotting")  # setup imports a student may call


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
        if self.allowed is not None:
            parts.append("no names the setup imported from torch, os or the course package")
        parts.append("no dynamic imports or introspection (__import__, importlib, eval, exec, globals, getattr, "
                     "sys, os.system, gc, inspect, frames, private `_` or `__` attributes, pickle loading)"
                     + ("" if self.magics else ", no % magics or ! shell commands"))
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


def given_names(trusted: list[str], rule: OwnCode) -> frozenset[str]:
    """Names the trusted (locked) cells ``trusted`` bind by importing what an allow-list ``rule`` forbids
    (``os``, ``conv2d`` from torch, ``digits`` from cnncourse, ...): a student's cell may not use them either.
    The course's helpers for students (``cnncourse.testcells``, ``cnncourse.plotting``) and harmless modules
    (``time``, ``warnings``) stay usable; a rule without an allow-list (torch allowed) refuses only its names."""
    if rule.allowed is None:
        return frozenset()
    refused = tuple(rule.forbidden) + _INTROSPECTION_MODULES + ("os",)
    names: set[str] = set()
    for source in trusted:
        tree = _python(source)
        for node in ast.walk(tree) if tree is not None else ():
            if isinstance(node, ast.Import):
                names.update((a.asname or a.name.split(".")[0]) for a in node.names
                             if _under(a.name, refused) and not _under(a.name, _HELPER_MODULES))
            elif isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if _under(module, refused) and not _under(module, _HELPER_MODULES):
                    names.update(a.asname or a.name for a in node.names if a.name != "*")
    return frozenset(names)


@functools.lru_cache(maxsize=None)
def _installed(top: str) -> bool:
    """Whether ``top`` is a module of Python or of the environment, not a file next to the notebook (which a
    submission can write, full of what the rule forbids, and import)."""
    if top in sys.builtin_module_names or top == "__future__":
        return True
    here = {"", ".", os.getcwd()}
    path = [p for p in sys.path if p not in here and Path(p).resolve() != Path.cwd().resolve()]
    try:
        return importlib.machinery.PathFinder.find_spec(top, path) is not None or \
            importlib.machinery.FrozenImporter.find_spec(top) is not None
    except (ImportError, ValueError, OSError):
        return False


def _internal_name(name: str) -> bool:
    """A module path part or imported name that reaches internals (``_core``, ``f2py``, ``__main__``)."""
    return name in _INTERNAL_ATTRS or (name.startswith("_") and name not in _PLAIN_DUNDERS | {"__future__"})


def _attribute_problem(node: ast.Attribute) -> str | None:
    attr = node.attr
    dunder = attr.startswith("__") and attr.endswith("__")
    on_self = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
    if attr == "benchmark" and not (isinstance(node.value, ast.Attribute) and node.value.attr == "utils"):
        return None  # torch.backends.cudnn.benchmark = True is fine; torch.utils.benchmark runs strings
    if attr in _INTERNAL_ATTRS or (dunder and attr not in _PLAIN_DUNDERS) or (
            attr.startswith("_") and not dunder and not on_self):
        return f"`.{attr}` (interpreter internals) is not allowed"
    return None


def _call_problem(node: ast.Call) -> str | None:
    for keyword in node.keywords:
        if keyword.arg in _PICKLE_KEYWORDS:
            return f"`{keyword.arg}=` (loading pickled code) is not allowed"
    if isinstance(node.func, ast.Attribute) and node.func.attr == "load" and len(node.args) >= 3:
        return "`load(file, mmap_mode, allow_pickle)` (loading pickled code) is not allowed"
    return None


def problems(sources: list[str], rule: OwnCode, given: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """Every violation of ``rule`` in the cells ``sources`` (empty when the code follows it). ``given``:
    names the locked cells imported from refused modules (see :func:`given_names`), refused here too."""
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
            if isinstance(node, ast.ImportFrom):  # `from numpy import f2py`, `from typing import get_type_hints`
                modules += [f"{node.module}.{alias.name}" for alias in node.names if _internal_name(alias.name)]
            for module in modules:
                if not module.startswith(".") and not _installed(module.split(".")[0]):
                    found.append(f"{where}: `import {module}` (a module that is not installed, such as a file "
                                 "your code wrote) is not allowed")
                elif module.startswith(".") or _under(module, forbidden) or (
                        rule.allowed is not None and not _under(module, tuple(rule.allowed))) or any(
                        _internal_name(part) for part in module.split(".")):
                    found.append(f"{where}: `import {module}` is not allowed")
            if isinstance(node, ast.Name):
                if node.id == "get_ipython" and rule.magics:
                    continue
                if node.id in _DYNAMIC_NAMES or (node.id.startswith("__") and node.id not in _PLAIN_DUNDERS):
                    what = "`get_ipython` (IPython magics and shell commands)" if node.id == "get_ipython" \
                        else f"`{node.id}`"
                    found.append(f"{where}: {what} is not allowed")
                elif _under(node.id, tuple(rule.forbidden)) or node.id in given:
                    found.append(f"{where}: uses `{node.id}`, which is not allowed")
            elif isinstance(node, ast.Attribute) and (problem := _attribute_problem(node)):
                found.append(f"{where}: {problem}")
            elif isinstance(node, ast.Call) and (problem := _call_problem(node)):
                found.append(f"{where}: {problem}")
    return list(dict.fromkeys(found))


def _code_cells(nb: dict, trusted_ids: set[str] | None, trusted: bool) -> list[str]:
    out = []
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        meta = cell.get("metadata", {}).get("nbgrader", {})
        locked = (meta.get("locked") or meta.get("grade")) and not meta.get("solution")
        if bool(locked and (trusted_ids is None or meta.get("grade_id") in trusted_ids)) != trusted:
            continue
        source = cell.get("source", "")
        out.append("".join(source) if isinstance(source, list) else source)
    return out


def student_cells(nb: dict, trusted_ids: set[str] | None = None) -> list[str]:
    """Sources of the code cells a student can edit: solution cells and cells without nbgrader metadata.

    ``trusted_ids``: the grade ids of the source notebook's locked cells; a cell claiming to be locked with
    another id is the student's own. Without it, any locked or graded non-solution cell is trusted.
    """
    return _code_cells(nb, trusted_ids, trusted=False)


def locked_cells(nb: dict, trusted_ids: set[str] | None = None) -> list[str]:
    """Sources of the trusted code cells (locked and test cells): the ones :func:`student_cells` leaves out."""
    return _code_cells(nb, trusted_ids, trusted=True)


@functools.lru_cache(maxsize=8)
def _saved_problems(path: str, mtime_ns: int, size: int, rule: OwnCode) -> tuple[str, ...]:
    """The rule's violations in the notebook file ``path``, read and parsed again only when the file changed
    (every test cell of an assignment checks the same saved notebook: 11 ms each for conv_arithmetic)."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    return tuple(problems(student_cells(nb), rule, given_names(locked_cells(nb), rule)))


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
    status = path.stat()
    found = _saved_problems(str(path.resolve()), status.st_mtime_ns, status.st_size, rule)
    if found:
        raise AssertionError("your own code rule (" + rule.describe() + ") is broken in the saved notebook:\n  "
                             + "\n  ".join(found) + "\n(the hidden tests give 0 points while this fails; save "
                             "the notebook after fixing it)")
