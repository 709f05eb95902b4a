"""Helpers for notebook test cells: comparisons that teach, gradient checks and torch oracles.

* :func:`assert_close` compares an answer with the expected value and, on failure, says what was wrong:
  a shape mismatch, a ``None`` from a missing ``return``, an ``(out, cache)`` tuple where only ``out`` was
  wanted, or how many entries are wrong, where the first ones are and the max relative error.
* :func:`numerical_gradient` / :func:`check_gradient` check a backward pass with centred differences.
* :func:`random_conv_case` / :func:`random_pool_case` draw a random layer configuration and return the
  inputs together with ``torch.nn.functional`` outputs and autograd gradients (float64) as the oracle.
* :func:`sealed_checker` is what *hidden* tests use. A locked setup cell creates it before any student
  code runs; its methods use only references captured at that moment, so a submission that replaces
  ``numpy`` functions, ``math.isclose``, builtins or this module cannot make a wrong answer pass.

Nothing here prints: a passing check is silent (any stderr output in a test cell scores 0 in nbgrader).
"""
from __future__ import annotations

import builtins
import math
import types
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

__all__ = [
    "assert_close",
    "numerical_gradient",
    "check_gradient",
    "random_conv_case",
    "random_pool_case",
    "ConvCase",
    "PoolCase",
    "sealed_checker",
    "SealedChecker",
]

_SHOW = 5  # wrong entries listed in a failure message


class SealedChecker:
    """Comparison methods bound at creation; see :func:`sealed_checker`. Immutable: no attribute can be set."""

    __slots__ = ("equal", "close", "own")

    def __setattr__(self, name, value):
        raise AttributeError("a sealed checker cannot be modified")

    def __delattr__(self, name):
        raise AttributeError("a sealed checker cannot be modified")

    def __repr__(self) -> str:
        return "SealedChecker(equal, close, own)"


def sealed_checker() -> SealedChecker:
    """A checker for hidden tests that a submission cannot tamper with after it was created.

    ``check.equal(actual, expected, name)``: exact equality for ``int`` (also numpy integer scalars),
    ``str``, and tuples of those; ``bool`` is never accepted as an int.
    ``check.close(actual, expected, name, rtol=1e-6, atol=1e-8)``: ``float`` (or numpy float scalars) or
    ``numpy.ndarray`` with a numeric dtype; shapes must match exactly, every entry must satisfy
    ``|actual - expected| <= atol + rtol * |expected|`` and NaN is always wrong.

    Types are checked with ``type(x) is ...`` (no subclasses, so no object with a rigged ``__eq__``), and
    every function used is captured in this closure now: later monkeypatching of ``numpy``, ``math``,
    ``builtins`` or ``cnncourse.grading`` has no effect. Failures raise ``AssertionError`` with a message
    that names ``name``.
    ``check.own(fn, name)``: ``fn`` is a plain function defined in the notebook (``__main__``) whose code, and
    that of every notebook function it calls, names neither ``torch`` nor ``cnncourse`` (whose ``layers``
    module holds the reference answers) nor ``importlib``/``__import__``/``eval``/``exec``, and uses no
    object from those packages through a global name: an exercise that must be written in NumPy cannot
    delegate to the oracle.

    This stops answers that cheat by patching libraries or by calling the reference, not a deliberate
    attack on the checker's own internals (rebinding ``_check``, ``ctypes``, reading the oracle arrays);
    edited test cells are caught by nbgrader's checksums.
    """
    # Everything the methods need, captured now (ufuncs and C methods, not Python wrappers that read globals).
    _type, _len, _range, _min, _repr, _tuple, _int, _float, _str, _zip = (
        builtins.type, builtins.len, builtins.range, builtins.min, builtins.repr, builtins.tuple,
        builtins.int, builtins.float, builtins.str, builtins.zip)
    _id = builtins.id
    _AssertionError, _fabs, _isnan, _bool = builtins.AssertionError, math.fabs, math.isnan, builtins.bool
    _ndarray = np.ndarray
    _int_types = (int, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64)
    _float_types = (float, np.float16, np.float32, np.float64)
    _abs, _sub, _mul, _add, _le, _not, _isnan_u = (np.absolute, np.subtract, np.multiply, np.add,
                                                   np.less_equal, np.logical_not, np.isnan)
    _maximum, _divide = np.maximum, np.divide
    _nonzero, _ravel, _tolist, _astype = _ndarray.nonzero, _ndarray.ravel, _ndarray.tolist, _ndarray.astype
    _float64, _int64 = np.float64, np.int64
    _show = _SHOW
    _FunctionType, _ModuleType, _getattr, _set = types.FunctionType, types.ModuleType, builtins.getattr, builtins.set
    _forbidden_roots = ("torch", "cnncourse")
    _forbidden_names = frozenset({"torch", "cnncourse", "layers", "importlib", "import_module", "__import__",
                                  "eval", "exec", "compile", "sys", "modules", "builtins", "__builtins__"})

    def _describe(x):
        t = _type(x)
        if x is None:
            return "None (did the function forget to `return` its result?)"
        if t is _ndarray:
            return f"an array of shape {x.shape} and dtype {x.dtype}"
        if t is _tuple:
            return f"a tuple of length {_len(x)}"
        return f"a value of type {t.__name__}"

    def _wrong_type(actual, expected, name, wanted):
        hint = ""
        if _type(actual) is _tuple and _type(expected) is _ndarray:
            hint = " (a layer's forward returns (out, cache): unpack it and compare `out`)"
        return _AssertionError(f"{name}: expected {wanted}, got {_describe(actual)}{hint}")

    def equal(actual, expected, name="value"):
        t = _type(expected)
        if t is _tuple:
            if _type(actual) is not _tuple:
                raise _wrong_type(actual, expected, name, f"a tuple of length {_len(expected)}")
            if _len(actual) != _len(expected):
                raise _AssertionError(f"{name}: expected {_len(expected)} values {expected!r}, "
                                      f"got {_len(actual)}: {actual!r}")
            for i in _range(_len(expected)):
                equal(actual[i], expected[i], f"{name}[{i}]")
            return
        if t in _int_types and t is not _bool:
            if _type(actual) not in _int_types:
                raise _wrong_type(actual, expected, name, "an int")
            if _int(actual) != _int(expected):
                raise _AssertionError(f"{name}: expected {_int(expected)}, got {_int(actual)}")
            return
        if t is _str:
            if _type(actual) is not _str:
                raise _wrong_type(actual, expected, name, "a str")
            if actual != expected:
                raise _AssertionError(f"{name}: expected {expected!r}, got {actual!r}")
            return
        raise _AssertionError(f"{name}: equal() compares ints, strs and tuples of them; use close() for "
                              f"{t.__name__}")

    def close(actual, expected, name="output", rtol=1e-6, atol=1e-8):
        rtol, atol = _float(rtol), _float(atol)
        if _type(expected) in _float_types or _type(expected) in _int_types:
            if _type(expected) is _bool:
                raise _AssertionError(f"{name}: close() compares numbers and arrays, not bool")
            if _type(actual) not in _float_types and (_type(actual) not in _int_types or
                                                      _type(actual) is _bool):
                raise _wrong_type(actual, expected, name, "a number (float)")
            a, e = _float(actual), _float(expected)
            if _isnan(a) or not _fabs(a - e) <= atol + rtol * _fabs(e):
                raise _AssertionError(f"{name}: expected {e!r}, got {a!r} (tolerance atol={atol:g} + "
                                      f"rtol={rtol:g} * |expected|)")
            return
        if _type(expected) is not _ndarray:
            raise _AssertionError(f"{name}: the expected value must be a float or a numpy array, "
                                  f"not {_type(expected).__name__} (this is a bug in the test)")
        if _type(actual) is not _ndarray:
            raise _wrong_type(actual, expected, name, f"a numpy array of shape {expected.shape}")
        if actual.shape != expected.shape:
            raise _AssertionError(f"{name}: expected shape {expected.shape}, got shape {actual.shape}")
        if actual.dtype.kind not in "fiu" or actual.dtype.kind == "b":
            raise _AssertionError(f"{name}: expected a float array, got dtype {actual.dtype}")
        a, e = _astype(actual, _float64), _astype(expected, _float64)
        diff = _abs(_sub(a, e))
        ok = _le(diff, _add(atol, _mul(rtol, _abs(e))))  # False where diff is NaN
        bad = _not(ok)
        nbad = _int(_add.reduce(_ravel(bad), dtype=_int64)) if bad.size else 0
        if nbad == 0:
            return
        rel = _divide(diff, _maximum(_abs(e), atol if atol > 0 else 1e-300))
        rel = _ravel(rel)
        max_rel = "nan" if _add.reduce(_ravel(_isnan_u(a))) else f"{_float(_maximum.reduce(rel)):.3g}"
        where = _nonzero(bad)
        lines = []
        for k in _range(_min(nbad, _show)):
            idx = _tuple(_int(ix[k]) for ix in where)
            lines.append(f"  at {idx}: got {_float(a[idx]):.6g}, expected {_float(e[idx]):.6g}")
        more = f"\n  ... and {nbad - _show} more" if nbad > _show else ""
        raise _AssertionError(
            f"{name}: {nbad} of {bad.size} entries differ (max relative error {max_rel}; "
            f"tolerance atol={atol:g} + rtol={rtol:g} * |expected|)\n" + "\n".join(lines) + more)

    def _foreign(value):
        """The forbidden package ``value`` comes from, or ``""``."""
        label = value.__name__ if _type(value) is _ModuleType else _getattr(value, "__module__", None)
        if _type(label) is not _str:
            return ""
        for root in _forbidden_roots:
            if label == root or label.startswith(root + "."):
                return label
        return ""

    def own(fn, name="function"):
        if _type(fn) is not _FunctionType:
            raise _AssertionError(f"{name} must be a function defined with `def` in this notebook, "
                                  f"got {_describe(fn)}")
        todo, seen = [fn], _set()
        while todo:
            f = todo.pop()
            if f.__module__ != "__main__":
                raise _AssertionError(f"{name} must be written in this notebook: {f.__qualname__} comes from "
                                      f"{f.__module__} (write it yourself in NumPy)")
            codes = [f.__code__]
            while codes:
                code = codes.pop()
                for ident in code.co_names:
                    if ident.partition(".")[0] in _forbidden_names:  # also `import cnncourse.layers` in fn
                        raise _AssertionError(f"{name} uses `{ident}`: this exercise must be solved with NumPy "
                                              "only (no torch, no cnncourse, no dynamic imports)")
                    if ident in f.__globals__:
                        value = f.__globals__[ident]
                        origin = _foreign(value)
                        if origin:
                            raise _AssertionError(f"{name} uses `{ident}` from {origin}: this exercise must be "
                                                  "solved with NumPy only")
                        if _type(value) is _FunctionType and _id(value) not in seen:
                            seen.add(_id(value))
                            todo.append(value)
                for const in code.co_consts:
                    if _type(const) is _type(code):
                        codes.append(const)

    checker = object.__new__(SealedChecker)
    object.__setattr__(checker, "equal", equal)
    object.__setattr__(checker, "close", close)
    object.__setattr__(checker, "own", own)
    return checker


_CHECK = sealed_checker()


def _as_expected(expected: Any) -> Any:
    """Turn a test's expected value (tensor, list, numpy scalar) into a float or an ndarray."""
    if hasattr(expected, "detach"):  # torch.Tensor without importing torch
        expected = expected.detach().cpu().numpy()
    if isinstance(expected, (list, tuple)):
        expected = np.asarray(expected, dtype=np.float64)
    if isinstance(expected, np.ndarray):
        return expected if type(expected) is np.ndarray else np.asarray(expected)
    return float(expected)


def assert_close(actual: Any, expected: Any, name: str = "output", rtol: float = 1e-6, atol: float = 1e-8,
                 hint: str | Callable[[], str] | None = None) -> None:
    """Raise ``AssertionError`` unless ``actual`` matches ``expected`` entry-wise within tolerance.

    ``actual``: a ``numpy.ndarray`` (or a float) computed by the student's code.
    ``expected``: an array, tensor, list or number. Shapes must match exactly (no broadcasting). The message
    names the shape mismatch, or the number of wrong entries, the first few positions and values, and the
    max relative error ``|actual - expected| / |expected|``.
    ``hint``: a likely cause to add to the message (a string, or a function called only on failure, such as
    ``lambda: conv_forward_hint(out, x, w, b, conv_param)`` from ``cnncourse.testcells.hints``); empty hints are left out.
    """
    try:
        _CHECK.close(actual, _as_expected(expected), name, rtol=rtol, atol=atol)
    except AssertionError as exc:
        text = hint() if callable(hint) else hint
        if text:
            raise AssertionError(f"{exc}\nLikely cause: {text}") from None
        raise


def numerical_gradient(f: Callable[[np.ndarray], Any], x: np.ndarray, df: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Centred-difference gradient of ``sum(f(x) * df)`` with respect to ``x`` (same shape as ``x``).

    ``f`` is called with ``x`` itself, perturbed in place one entry at a time (and restored), so ``f``
    must read ``x`` afresh on every call, e.g. ``lambda x: conv_forward_naive(x, w, b, p)[0]``.
    ``df`` is the upstream gradient (shape of ``f(x)``). Cost: ``2 * x.size`` calls of ``f``.
    """
    if not isinstance(x, np.ndarray) or x.dtype != np.float64:
        raise ValueError(f"numerical_gradient needs a float64 numpy array x (got {type(x).__name__}"
                         f"{'' if not isinstance(x, np.ndarray) else ' of dtype ' + str(x.dtype)}); "
                         "float32 is too coarse for finite differences")
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    if not np.shares_memory(flat, x):
        raise ValueError("numerical_gradient needs a contiguous x (it perturbs x in place)")
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
    try:
        _CHECK.close(analytic, numeric, name, rtol=rtol, atol=atol)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n(compared with the numerical gradient of the forward pass: the backward "
                             f"pass does not compute the derivative of the forward pass for {name})") from None
    return float(np.max(np.abs(analytic - numeric) / np.maximum(np.abs(numeric), atol)))


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))


@dataclass(frozen=True)
class ConvCase:
    """A random convolution and its torch oracle (all arrays float64 and read-only: pass ``.copy()`` to code
    that may write into its inputs).

    ``x: (N, C, H, W)``, ``w: (F, C, HH, WW)``, ``b: (F,)``, ``conv_param = {"stride": s, "pad": p}``,
    ``out: (N, F, H_out, W_out)`` from ``torch.nn.functional.conv2d``; ``dout`` (same shape as ``out``) is
    the upstream gradient and ``dx, dw, db`` are autograd's gradients of ``sum(out * dout)``.
    """

    x: np.ndarray
    w: np.ndarray
    b: np.ndarray
    conv_param: dict
    out: np.ndarray
    dout: np.ndarray
    dx: np.ndarray
    dw: np.ndarray
    db: np.ndarray

    def __repr__(self) -> str:
        return (f"ConvCase(x{self.x.shape}, w{self.w.shape}, stride={self.conv_param['stride']}, "
                f"pad={self.conv_param['pad']} -> out{self.out.shape})")


@dataclass(frozen=True)
class PoolCase:
    """A random pooling layer and its torch oracle (float64): ``x: (N, C, H, W)``,
    ``pool_param = {"pool_height", "pool_width", "stride"}``, ``out`` from ``max_pool2d``/``avg_pool2d``,
    ``dout`` and autograd's ``dx``."""

    kind: str
    x: np.ndarray
    pool_param: dict
    out: np.ndarray
    dout: np.ndarray
    dx: np.ndarray

    def __repr__(self) -> str:
        p = self.pool_param
        return (f"PoolCase({self.kind}, x{self.x.shape}, {p['pool_height']}x{p['pool_width']}, "
                f"stride={p['stride']} -> out{self.out.shape})")


def _frozen(a: np.ndarray) -> np.ndarray:
    """A read-only float64 copy: an oracle that code under test cannot change by writing into its inputs."""
    a = np.array(a, dtype=np.float64, copy=True)
    a.setflags(write=False)
    return a


def _tiling_size(rng: np.random.Generator, kernel: int, stride: int, pad: int, max_out: int) -> int:
    """An input size for which (size + 2 pad - kernel) is a multiple of stride and the output is >= 1."""
    out = int(rng.integers(1, max_out + 1))
    size = (out - 1) * stride + kernel - 2 * pad
    while size < 1 or size + 2 * pad < kernel:
        out += 1
        size = (out - 1) * stride + kernel - 2 * pad
    return size


def random_conv_case(seed: int, N: int | None = None, C: int | None = None, F: int | None = None,
                     kernel: Any = None, stride: Any = None, pad: Any = None, max_out: int = 5,
                     pairs: bool = False) -> ConvCase:
    """A random convolution (tiling configuration, float64) with ``torch.nn.functional.conv2d`` as the oracle.

    Unspecified sizes are drawn from ``seed``: ``N`` 1-3, ``C`` 1-4, ``F`` 1-4, kernel sides 1-4 (non-square
    allowed), stride 1-3 and pad 0-2, output sides 1-``max_out``. ``kernel``, ``stride``, ``pad`` may be an
    int or an ``(h, w)`` pair; with ``pairs=True`` random strides/pads are drawn per side and given as
    pairs. Input sides are chosen so that the stride tiles the padded input.
    """
    import torch

    rng = np.random.default_rng(seed)
    N = int(rng.integers(1, 4)) if N is None else N
    C = int(rng.integers(1, 5)) if C is None else C
    F = int(rng.integers(1, 5)) if F is None else F
    kh, kw = _pair(kernel) if kernel is not None else (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
    if stride is None:
        stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4))) if pairs else int(rng.integers(1, 4))
    if pad is None:
        pad = (int(rng.integers(0, 3)), int(rng.integers(0, 3))) if pairs else int(rng.integers(0, 3))
    (sh, sw), (ph, pw) = _pair(stride), _pair(pad)
    H, W = _tiling_size(rng, kh, sh, ph, max_out), _tiling_size(rng, kw, sw, pw, max_out)
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((F, C, kh, kw))
    b = rng.standard_normal(F)
    stride_p = stride if np.isscalar(stride) else (sh, sw)
    pad_p = pad if np.isscalar(pad) else (ph, pw)
    tx, tw, tb = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, w, b))
    out = torch.nn.functional.conv2d(tx, tw, tb, stride=(sh, sw), padding=(ph, pw))
    dout = rng.standard_normal(tuple(out.shape))
    out.backward(torch.from_numpy(dout))
    return ConvCase(x=_frozen(x), w=_frozen(w), b=_frozen(b), conv_param={"stride": stride_p, "pad": pad_p},
                    out=_frozen(out.detach().numpy()), dout=_frozen(dout), dx=_frozen(tx.grad.numpy()),
                    dw=_frozen(tw.grad.numpy()), db=_frozen(tb.grad.numpy()))


def random_pool_case(seed: int, kind: str = "max", N: int | None = None, C: int | None = None,
                     pool: Any = None, stride: int | None = None, max_out: int = 4) -> PoolCase:
    """A random pooling layer (``kind`` ``"max"`` or ``"avg"``, no padding, tiling) with torch's
    ``max_pool2d`` / ``avg_pool2d`` and autograd as the oracle. Pool sides 1-3 (non-square allowed),
    stride 1-3; ties in max pooling have probability zero with Gaussian inputs."""
    import torch

    if kind not in ("max", "avg"):
        raise ValueError(f"kind must be 'max' or 'avg', got {kind!r}")
    rng = np.random.default_rng(seed)
    N = int(rng.integers(1, 4)) if N is None else N
    C = int(rng.integers(1, 4)) if C is None else C
    ph, pw = _pair(pool) if pool is not None else (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    s = int(rng.integers(1, 4)) if stride is None else int(stride)
    H, W = _tiling_size(rng, ph, s, 0, max_out), _tiling_size(rng, pw, s, 0, max_out)
    x = rng.standard_normal((N, C, H, W))
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    fn = torch.nn.functional.max_pool2d if kind == "max" else torch.nn.functional.avg_pool2d
    out = fn(tx, kernel_size=(ph, pw), stride=s)
    dout = rng.standard_normal(tuple(out.shape))
    out.backward(torch.from_numpy(dout))
    return PoolCase(kind=kind, x=_frozen(x), pool_param={"pool_height": ph, "pool_width": pw, "stride": s},
                    out=_frozen(out.detach().numpy()), dout=_frozen(dout), dx=_frozen(tx.grad.numpy()))
