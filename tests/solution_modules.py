"""The instructor-only Python files under solutions/ (oracles, the conv_layers reference layers), imported by path:
solutions/ is not a package and none of these files is ever released."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

SOLUTIONS = Path(__file__).resolve().parents[1] / "solutions"


def load_solution_module(relative: str) -> ModuleType:
    """Execute ``solutions/<relative>`` (e.g. ``"conv_layers/oracle_reference.py"``) as a fresh module, named
    ``<assignment>_<stem>`` (``conv_layers_oracle_reference``); it is not registered in ``sys.modules``."""
    path = SOLUTIONS / relative
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: pass a path relative to solutions/, such as "
                                "'conv_layers/oracle.py'")
    spec = importlib.util.spec_from_file_location(f"{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
