"""The JSON encoding of values passed between the grader and the student's kernel.

``encode(obj)`` turns arguments and answers into JSON-able data, ``decode(data)`` turns them back:

* ``numpy.ndarray`` and ``torch.Tensor`` -> ``{"__array__": <base64 .npy bytes>, "torch": bool}``
  (decoded as a ``numpy.ndarray``, or as its subclass :class:`TensorArray` when a tensor was sent, so a
  check can tell the two apart);
* ``tuple`` -> ``{"__tuple__": [...]}``; ``list`` and ``dict`` with ``str`` keys recursively;
* ``int``, ``float``, ``bool``, ``str``, ``None`` kept as such, so ``760`` and ``760.0`` stay distinct;
  numpy scalars -> ``{"__scalar__": <array>}`` (decoded as the numpy scalar);
* exceptions -> ``{"__exception__": "ValueError", "message": "..."}`` (decoded as :class:`RaisedError`);
* anything else -> ``{"__repr__": <type name>}`` (decoded as :class:`Unencodable`).

Non-finite floats are tagged (``{"__float__": "nan"}``) because JSON has no NaN. The encoder refuses
(``ValueError``) to produce more than :data:`MAX_BYTES` of array data, so a submission cannot flood the grader.
"""
from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["encode", "decode", "RaisedError", "Unencodable", "TensorArray", "MAX_BYTES", "MIME"]

MIME = "application/vnd.cnncourse.answers+json"
MAX_BYTES = 8 * 1024 * 1024  # array bytes per encoded value (one test cell's answers)
_MAX_DEPTH = 32


@dataclass(frozen=True)
class RaisedError:
    """An exception raised by the student's code, as it came back from the kernel."""

    name: str
    message: str

    def __str__(self) -> str:
        return f"{self.name}: {self.message}" if self.message else self.name


@dataclass(frozen=True)
class Unencodable:
    """A returned value the wire cannot carry (a function, a module, ...); only its type name is kept."""

    type_name: str

    def __str__(self) -> str:
        return f"a value of type {self.type_name}"


class TensorArray(np.ndarray):
    """A decoded ``torch.Tensor``: a numpy array that remembers it was a tensor in the kernel."""


class _Budget:
    def __init__(self, limit: int) -> None:
        self.left = limit

    def spend(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise ValueError(f"the answers are larger than {MAX_BYTES // (1024 * 1024)} MB: "
                             "return only what the exercise asks for")


def _npy(a: np.ndarray) -> str:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _float(x: float) -> Any:
    return x if math.isfinite(x) else {"__float__": repr(x)}


def encode(obj: Any, _budget: _Budget | None = None, _depth: int = 0) -> Any:
    """JSON-able form of ``obj`` (see the module docstring); ``ValueError`` when over :data:`MAX_BYTES`."""
    budget = _Budget(MAX_BYTES) if _budget is None else _budget
    if _depth > _MAX_DEPTH:
        return {"__repr__": "deeply nested value"}
    t = type(obj)
    if obj is None or t is bool or t is int or t is str:
        if t is str:
            budget.spend(len(obj))
        return obj
    if t is float:
        return _float(obj)
    if isinstance(obj, BaseException):
        return {"__exception__": t.__name__, "message": str(obj)[:2000]}
    if t is np.ndarray or _is_tensor(obj):
        is_torch = t is not np.ndarray
        arr = obj.detach().cpu().numpy() if is_torch else obj
        if arr.dtype.kind not in "biufc":
            return {"__repr__": f"array of dtype {arr.dtype}"}
        budget.spend(arr.nbytes)
        return {"__array__": _npy(np.ascontiguousarray(arr)), "torch": is_torch}
    if isinstance(obj, np.generic) and obj.dtype.kind in "biufc":
        return {"__scalar__": _npy(np.asarray(obj))}
    if t is tuple:
        return {"__tuple__": [encode(v, budget, _depth + 1) for v in obj]}
    if t is list:
        return [encode(v, budget, _depth + 1) for v in obj]
    if t is dict and all(type(k) is str for k in obj):
        return {"__dict__": {k: encode(v, budget, _depth + 1) for k, v in obj.items()}}
    return {"__repr__": t.__name__}


def _is_tensor(obj: Any) -> bool:
    # torch is never imported here: a tensor is recognised by its class's module and name.
    cls = type(obj)
    return cls.__module__.startswith("torch") and cls.__name__ in ("Tensor", "Parameter")


def _load(text: str) -> np.ndarray:
    arr = np.load(io.BytesIO(base64.b64decode(text.encode("ascii"))), allow_pickle=False)
    if arr.dtype.kind not in "biufc":  # what encode sends; a forged zero-size dtype holds 10**15 "entries"
        raise ValueError(f"not a wire-encoded array: dtype {arr.dtype}")
    return arr


def decode(data: Any) -> Any:
    """Inverse of :func:`encode` (tensors come back as numpy arrays)."""
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict):
        return data
    if "__array__" in data:
        arr = _load(data["__array__"])
        return arr.view(TensorArray) if data.get("torch") else arr
    if "__scalar__" in data:
        return _load(data["__scalar__"])[()]
    if "__tuple__" in data:
        return tuple(decode(v) for v in data["__tuple__"])
    if "__dict__" in data:
        return {k: decode(v) for k, v in data["__dict__"].items()}
    if "__float__" in data:
        return float(data["__float__"])
    if "__exception__" in data:
        return RaisedError(str(data["__exception__"]), str(data.get("message", "")))
    if "__repr__" in data:
        return Unencodable(str(data["__repr__"]))
    raise ValueError(f"not a wire-encoded value: a dict with keys {sorted(data)[:5]}")
