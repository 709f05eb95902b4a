"""Comparisons that teach, for test cells: what is wrong, where, and by how much.

* :func:`mismatch` describes how an answer differs from the expected value (or returns ``None``): a
  ``None`` from a missing ``return``, an ``(out, cache)`` tuple where only ``out`` was wanted, a shape or
  type mismatch, or how many entries are wrong and where. With ``reveal=False`` it never shows an expected
  value (the grader uses it for hidden tests).
* :func:`assert_close` raises ``AssertionError`` with that description (visible tests).
* :func:`assert_equal` checks an exact answer and its exact type (``int``, not ``760.0``);
  :func:`assert_raises` checks that a call refuses bad input.
* :func:`numerical_gradient` / :func:`check_gradient` check a backward pass with centred differences.

Nothing here prints: a passing check is silent.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

__all__ = ["mismatch", "assert_close", "assert_equal", "assert_raises", "numerical_gradient", "check_gradient",
           "describe"]

_SHOW = 5  # wrong entries listed in a message


def describe(x: Any) -> str:
    """A short phrase naming what ``x`` is, for messages (``"an array of shape (2, 3) and dtype float64"``)."""
    if x is None:
        return "None (did the function forget to `return` its result?)"
    if isinstance(x, np.ndarray):
        kind = "a torch tensor" if type(x) is not np.ndarray else "an array"
        return f"{kind} of shape {x.shape} and dtype {x.dtype}"
    if hasattr(x, "detach") and hasattr(x, "shape"):
        return f"a torch tensor of shape {tuple(x.shape)}"
    if isinstance(x, tuple):
        return f"a tuple of length {len(x)}"
    if isinstance(x, BaseException):
        return f"an exception {type(x).__name__}"
    text = str(x) if type(x).__module__ == "cnncourse.testcells.wire" else ""
    return text or f"a value of type {type(x).__name__}"


def _as_expected(expected: Any) -> Any:
    """A test's expected value (tensor, list, numpy scalar) as a float or a plain ndarray."""
    if hasattr(expected, "detach"):  # torch.Tensor without importing torch
        expected = expected.detach().cpu().numpy()
    if isinstance(expected, (list, tuple)):
        expected = np.asarray(expected, dtype=np.float64)
    if isinstance(expected, np.ndarray):
        return np.asarray(expected)
    return float(expected)


def mismatch(actual: Any, expected: Any, name: str = "output", rtol: float = 1e-6, atol: float = 1e-8,
             reveal: bool = True) -> str | None:
    """How ``actual`` differs from ``expected`` (a float, or an array of the same shape), or ``None`` if
    every entry satisfies ``|actual - expected| <= atol + rtol * |expected|`` (NaN is always wrong).

    ``actual`` must be a plain ``numpy.ndarray`` when ``expected`` is an array (a torch tensor is named as
    such), and an ``int``/``float`` (not ``bool``) when it is a number. ``reveal=False`` leaves expected
    values out of the message: the positions and the size of the error are still named.
    """
    expected = _as_expected(expected)
    if isinstance(expected, float):
        if isinstance(actual, (bool, np.bool_)) or not isinstance(actual, (int, float, np.integer, np.floating)):
            return f"{name}: expected a number, got {describe(actual)}"
        a = float(actual)
        if np.isnan(a) or not abs(a - expected) <= atol + rtol * abs(expected):
            shown = f"expected {expected!r}, got {a!r}" if reveal else f"got {a!r}, which is wrong"
            return f"{name}: {shown} (tolerance atol={atol:g} + rtol={rtol:g} * |expected|)"
        return None
    if type(actual) is not np.ndarray:
        hint = ""
        if isinstance(actual, tuple):
            hint = " (a layer's forward returns (out, cache): unpack it and compare `out`)"
        return f"{name}: expected a numpy array of shape {expected.shape}, got {describe(actual)}{hint}"
    if actual.shape != expected.shape:
        return f"{name}: expected shape {expected.shape}, got shape {actual.shape}"
    if actual.dtype.kind not in "fiu":
        return f"{name}: expected a float array, got dtype {actual.dtype}"
    a, e = actual.astype(np.float64), expected.astype(np.float64)
    diff = np.abs(a - e)
    bad = ~(diff <= atol + rtol * np.abs(e))  # True where diff is NaN
    nbad = int(bad.sum())
    if nbad == 0:
        return None
    rel = diff / np.maximum(np.abs(e), atol if atol > 0 else 1e-300)
    max_rel = "nan" if np.isnan(a).any() else f"{float(np.max(rel)):.3g}"
    lines = []
    for idx in list(zip(*np.nonzero(bad)))[:_SHOW]:
        idx = tuple(int(i) for i in idx)
        shown = f"  at {idx}: got {a[idx]:.6g}"
        lines.append(f"{shown}, expected {e[idx]:.6g}" if reveal else shown)
    more = f"\n  ... and {nbad - _SHOW} more" if nbad > _SHOW else ""
    size = f"max relative error {max_rel}; " if reveal else ""  # the error's size would give the answer away
    return (f"{name}: {nbad} of {bad.size} entries differ ({size}"
            f"tolerance atol={atol:g} + rtol={rtol:g} * |expected|)\n" + "\n".join(lines) + more)


def assert_close(actual: Any, expected: Any, name: str = "output", rtol: float = 1e-6, atol: float = 1e-8,
                 hint: str | Callable[[], str] | None = None) -> None:
    """Raise ``AssertionError`` unless ``actual`` matches ``expected`` entry-wise within tolerance.

    ``actual``: a ``numpy.ndarray`` (or a number) computed by the student's code.
    ``expected``: an array, tensor, list or number; shapes must match exactly (no broadcasting).
    ``hint``: a likely cause added to the message as ``Likely cause: ...`` (a string, or a function called
    only on failure, such as ``lambda: conv_forward_hint(out, x, w, b, conv_param)``); empty hints are left out.
    """
    message = mismatch(actual, expected, name, rtol=rtol, atol=atol)
    if message is None:
        return
    text = hint() if callable(hint) else hint
    raise AssertionError(f"{message}\nLikely cause: {text}" if text else message)


def _same(actual: Any, expected: Any) -> bool:
    """Equal and of exactly the same types, recursively through tuples and lists (no bool for int)."""
    if type(actual) is not type(expected):
        return False
    if isinstance(expected, (tuple, list)):
        return len(actual) == len(expected) and all(_same(a, e) for a, e in zip(actual, expected))
    return actual == expected


def assert_equal(actual: Any, expected: Any, name: str = "value", hint: str | None = None) -> None:
    """Raise ``AssertionError`` unless ``actual == expected`` with exactly the same types (``int`` is not
    ``float`` or ``bool``; a tuple is not a list), naming ``name`` and adding ``Likely cause: hint``."""
    if _same(actual, expected):
        return
    seqs = isinstance(actual, (tuple, list)) and isinstance(expected, (tuple, list))
    if actual == expected or (seqs and list(actual) == list(expected)):
        message = (f"{name} returned {actual!r}: the right value, but of type {type(actual).__name__}; it must be "
                   f"of type {type(expected).__name__} (exactly{', with Python ints inside' if seqs else ''})")
    else:
        message = f"{name} should be {expected!r}, got {describe(actual) if actual is None else repr(actual)}"
    raise AssertionError(f"{message}\nLikely cause: {hint}" if hint else message)


def assert_raises(exception: type[BaseException], fn: Callable[..., Any], *args: Any, name: str = "",
                  why: str = "", **kwargs: Any) -> None:
    """Raise ``AssertionError`` unless ``fn(*args, **kwargs)`` raises ``exception``; ``why`` says why it should."""
    call = name or getattr(fn, "__name__", "the function")
    try:
        got = fn(*args, **kwargs)
    except exception:
        return
    except Exception as exc:  # the wrong kind of error
        raise AssertionError(f"{call} raised {type(exc).__name__}({exc}) instead of {exception.__name__}"
                             + (f": {why}" if why else "")) from None
    raise AssertionError(f"{call} returned {got!r} instead of raising {exception.__name__}"
                         + (f": {why}" if why else ""))


def numerical_gradient(f: Callable[[np.ndarray], Any], x: np.ndarray, df: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Centred-difference gradient of ``sum(f(x) * df)`` with respect to ``x`` (same shape as ``x``).

    ``f`` is called with ``x`` itself, perturbed in place one entry at a time (and restored), so ``f``
    must read ``x`` afresh on every call, e.g. ``lambda x: conv_forward_naive(x, w, b, p)[0]``.
    ``df`` is the upstream gradient (shape of ``f(x)``). Cost: ``2 * x.size`` calls of ``f``.
    """
    if not isinstance(x, np.ndarray) or x.dtype != np.float64:
        got = type(x).__name__ + (f" of dtype {x.dtype}" if isinstance(x, np.ndarray) else "")
        raise ValueError(f"numerical_gradient needs a float64 numpy array x (got {got}); "
                         "float32 is too coarse for finite differences: pass x.astype(np.float64)")
    if not x.flags.c_contiguous:
        raise ValueError("numerical_gradient needs a C-contiguous x (it perturbs x in place): "
                         "pass np.ascontiguousarray(x)")
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        plus = np.array(f(x), dtype=np.float64, copy=True)
        flat[i] = old - h
        minus = np.array(f(x), dtype=np.float64, copy=True)
        flat[i] = old
        gflat[i] = np.sum((plus - minus) * df) / (2 * h)
    return grad


def check_gradient(f: Callable[[np.ndarray], Any], x: np.ndarray, df: np.ndarray, analytic: Any, name: str = "dx",
                   rtol: float = 1e-5, atol: float = 1e-8, h: float = 1e-5) -> float:
    """Compare an analytic gradient with :func:`numerical_gradient`; return the max relative error.

    Raises ``AssertionError`` naming ``name`` (``"dx"``, ``"dw"``, ...) with the wrong entries when they differ.
    """
    numeric = numerical_gradient(f, x, df, h=h)
    message = mismatch(analytic, numeric, name, rtol=rtol, atol=atol)
    if message is not None:
        raise AssertionError(f"{message}\n(compared with the numerical gradient of the forward pass: the "
                             f"backward pass does not compute the derivative of the forward pass for {name})")
    return float(np.max(np.abs(analytic - numeric) / np.maximum(np.abs(numeric), atol)))
