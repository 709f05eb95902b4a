"""Runs inside the student's kernel (imported by the grader before the first cell): remembers the kernel's
clean hooks and puts them back before every test cell.

A submission can change how later cells run without touching them: IPython event callbacks
(``pre_run_cell`` ...), AST and input transformers, ``sys.settrace``/``setprofile``, import hooks
(``sys.meta_path``, ``sys.path_hooks``), replaced builtins, display and exception hooks. ``install(key)``
snapshots all of these and registers ``reset`` as module ``sys.modules[key]`` (a random key chosen by the
grader); the grader calls ``reset()`` twice before a test cell, so a hook that re-installs itself while the
first reset runs is gone after the second. Callbacks that libraries register later (matplotlib's inline
backend) are kept when their code lives in an installed file, not in a cell.
"""
from __future__ import annotations

import builtins
import sys
import threading
import types


def _library_code(func: object) -> bool:
    code = getattr(func, "__code__", None)
    filename = getattr(code, "co_filename", "")
    return isinstance(func, types.FunctionType) and filename.startswith((sys.prefix, sys.base_prefix)) \
        and "ipykernel_" not in filename


def install(key: str) -> None:
    """Snapshot the kernel's hooks and register ``reset`` under ``sys.modules[key]``."""
    ip = get_ipython()  # noqa: F821 (the IPython kernel's global)
    manager = ip.input_transformer_manager
    lists = {
        "meta_path": sys.meta_path, "path_hooks": sys.path_hooks, "ast": ip.ast_transformers,
        "input_post": ip.input_transformers_post, "cleanup": manager.cleanup_transforms,
        "line": manager.line_transforms, "token": manager.token_transformers,
    }
    saved_lists = {name: list(value) for name, value in lists.items()}
    saved_events = {name: list(cbs) for name, cbs in ip.events.callbacks.items()}
    saved_builtins = dict(builtins.__dict__)
    saved_hooks = (sys.displayhook, sys.excepthook)

    def reset() -> None:
        sys.settrace(None)
        sys.setprofile(None)
        threading.settrace(None)
        threading.setprofile(None)
        for name, value in saved_lists.items():
            lists[name][:] = value
        sys.path_importer_cache.clear()
        for name, callbacks in ip.events.callbacks.items():
            before = saved_events.get(name, [])
            callbacks[:] = before + [cb for cb in callbacks if cb not in before and _library_code(cb)]
        for name in [n for n in builtins.__dict__ if n not in saved_builtins]:
            del builtins.__dict__[name]
        builtins.__dict__.update(saved_builtins)
        sys.displayhook, sys.excepthook = saved_hooks

    module = types.ModuleType(key)
    module.reset = reset
    sys.modules[key] = module
