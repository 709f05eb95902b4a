"""Defer the one import that makes every Jupyter tool start slowly.

jsonschema (imported by nbformat, hence by nbgrader, nbclient and every ``cnncourse`` command) imports
``rfc3987_syntax`` whenever it is installed (jupyter_events pulls it in through ``jsonschema[format-nongpl]``),
and that module builds a Lark parser for the whole RFC 3987 grammar at import time: 1.2-1.4 s of CPU in every
such process, measured on the 2-core dev machine, although only jsonschema's ``iri`` / ``iri-reference`` format
checks ever call it and nothing in the course validates an IRI. ``defer_rfc3987_syntax`` puts a stand-in
module in ``sys.modules`` whose ``is_valid_syntax`` (and any other attribute) imports the real module on first
use, so those checks behave exactly as before and the parser is built only when an IRI is validated.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

NAME = "rfc3987_syntax"


def _real() -> types.ModuleType:
    """The real ``rfc3987_syntax``, imported now if only the stand-in is loaded."""
    module = sys.modules.get(NAME)
    if module is None or getattr(module, "__deferred__", False):
        sys.modules.pop(NAME, None)
        module = importlib.import_module(NAME)
    return module


def _is_valid_syntax(term: str, value: str) -> bool:
    return _real().is_valid_syntax(term, value)


def _getattr(attr: str) -> Any:
    if attr.startswith("__"):  # tools that scan sys.modules ask for __file__, __path__, ...: not a use
        raise AttributeError(f"module {NAME!r} (deferred) has no attribute {attr!r}")
    return getattr(_real(), attr)


def defer_rfc3987_syntax() -> bool:
    """Install the stand-in unless ``rfc3987_syntax`` is absent or already imported; True when installed."""
    if NAME in sys.modules or importlib.util.find_spec(NAME) is None:
        return False
    stub = types.ModuleType(NAME, "stand-in for rfc3987_syntax: the real module is imported on first use "
                                  "(cnncourse.lazyimports)")
    stub.__deferred__ = True
    stub.is_valid_syntax = _is_valid_syntax
    stub.__getattr__ = _getattr
    sys.modules[NAME] = stub
    return True
