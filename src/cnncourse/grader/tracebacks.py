"""Cheaper tracebacks in warm grading kernels (``zygote.py``), with exactly the same text.

A released or half-done notebook fails in most of its test cells, and IPython's ``Context`` traceback of one
failing cell cost a warm kernel about 25 ms (70 ms for its first one), more than the test cell itself, on the
2-core dev machine. Three costs are not the traceback's own work, and the zygote removes them once, before it
forks any kernel:

* the first traceback of a process builds ``inspect``'s file-to-module map over every imported module (torch's
  thousands among them) and pygments' lexer and terminal-style tables: ``warm_up`` does that in the zygote, and
  every kernel inherits the result;
* stack_data highlights each frame with a Python lexer *class* it defines anew on every call, so pygments
  recompiles the lexer's regular expressions per frame: ``one_lexer_class`` defines that class once;
* ``inspect.getmodule`` scans all of ``sys.modules`` each time it is asked about a file no module was loaded
  from, i.e. for every frame of a notebook cell: ``skip_module_scan_for_cells`` answers those at once with the
  scan's own answer.

``format_tracebacks_once`` (per kernel, on its shell) drops the second formatting IPython does for ``%notebook``.
The tests compare the tracebacks with and without these changes, character for character.
"""
from __future__ import annotations

import inspect
import linecache
import sys


def install() -> None:
    """Apply ``one_lexer_class`` and ``skip_module_scan_for_cells``, then ``warm_up`` (in the zygote). Each is
    only a speed-up: one that fails with another IPython, stack_data or pygments is skipped, and the zygote
    still starts (the tests of this module fail instead)."""
    for step in (one_lexer_class, skip_module_scan_for_cells, warm_up):
        try:
            step()
        except Exception:  # noqa: S112 (the kernels then format tracebacks as stock IPython does)
            continue


def warm_up() -> None:
    """Format one traceback as a kernel would (``Context`` mode, highlighted), in this process."""
    from IPython.core import ultratb

    try:
        exec(compile("def _warm_up():\n    raise ValueError('warm-up')\n_warm_up()\n", "<warm-up>", "exec"), {})
    except ValueError:
        ultratb.AutoFormattedTB(mode="Context").structured_traceback(*sys.exc_info())


def one_lexer_class() -> bool:
    """stack_data's ``_pygmented_with_ranges`` with its lexer class made once (the ranges it marks are given to
    each lexer instead of closed over by a new class). False when this stack_data has no such function."""
    import stack_data.core
    import stack_data.utils

    if getattr(stack_data.core, "_pygmented_with_ranges", None) is not stack_data.utils._pygmented_with_ranges:
        return False
    import pygments
    from pygments.lexers import get_lexer_by_name

    class RangeLexer(type(get_lexer_by_name("python3"))):
        """Marks the tokens inside ``ranges`` as ``ExecutingNode`` (stack_data's ``MyLexer``)."""

        def __init__(self, ranges, **options):
            super().__init__(**options)
            self.ranges = ranges

        def get_tokens(self, text):
            length = 0
            for ttype, value in super().get_tokens(text):
                if any(start <= length < end for start, end in self.ranges):
                    ttype = ttype.ExecutingNode
                length += len(value)
                yield ttype, value

    def pygmented_with_ranges(formatter, code, ranges):
        try:
            highlighted = pygments.highlight(code, RangeLexer(ranges, stripnl=False), formatter)
        except Exception:  # as stack_data: code without highlighting rather than no traceback
            highlighted = code
        return highlighted.splitlines()

    stack_data.core._pygmented_with_ranges = pygmented_with_ranges
    return True


def skip_module_scan_for_cells() -> None:
    """``inspect.getmodule`` answers None for a frame, code object or traceback of a notebook cell without
    scanning ``sys.modules``: a cell's file is one IPython registered in ``linecache`` (no modification time),
    which no module was loaded from, so the scan never finds it and ``getmodule`` returns None for an object
    without ``__name__``. Everything else goes to the original."""
    scan = inspect.getmodule
    if getattr(scan, "__wrapped_scan__", None):
        return

    def getmodule(object, _filename=None):
        if (_filename is not None and not inspect.ismodule(object) and not hasattr(object, "__module__")
                and not hasattr(object, "__name__") and _filename not in inspect.modulesbyfile):
            entry = linecache.cache.get(_filename)
            if (entry is not None and len(entry) == 4 and entry[1] is None
                    and inspect.getabsfile(object, _filename) not in inspect.modulesbyfile):
                return None
        return scan(object, _filename)

    getmodule.__wrapped_scan__ = scan
    getmodule.__doc__ = scan.__doc__
    inspect.getmodule = getmodule


def format_tracebacks_once(shell) -> None:
    """A failing cell's traceback is formatted for the cell's output only: IPython formats it a second time
    for ``%notebook``'s history (``_format_exception_for_storage``, ~10 ms per failing cell, more than a
    quick test cell itself), which a one-shot grading kernel never writes."""
    shell._format_exception_for_storage = lambda exception, *args, **kwargs: {
        "ename": type(exception).__name__, "evalue": str(exception), "traceback": []}
