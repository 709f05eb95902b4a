"""How much faster is im2col than naive loops, and how close to PyTorch? (the race of conv_layers' part 6)

Times one convolution forward pass, N=16 images, 3 -> 32 channels, 32x32, 3x3 kernel, stride 1, pad 1, on
the CPU in one dtype (float64 by default, the course's dtype) for three implementations: the instructor's
reference ``conv_forward_naive`` (four Python loops) and ``conv_forward_im2col`` (one matrix product), executed
from the solution cells of ``solutions/conv_layers/conv_layers.ipynb`` (the package ships no answers), and
``torch.nn.functional.conv2d``. Each is the best of 3 rounds of ``--repeats`` runs (naive: one round of
``--naive-repeats``). Prints a table and the ratios and writes them as JSON to ``reports/conv_speed.json``.

    python benchmarks/conv_speed.py [--dtype float32] [--threads 1] [--repeats 20] [--out reports/conv_speed.json]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
CASE = dict(N=16, C=3, F=32, H=32, W=32, kernel=3, stride=1, pad=1)


def best_times(fns: dict, repeats: int, rounds: int = 3) -> dict:
    """Fastest call of each function, in seconds: ``rounds`` rounds in which each function runs ``repeats``
    times in a row. A function's calls are kept together because interleaving NumPy's BLAS threads with
    torch's thread pool makes both spin-wait on each other; the rounds let every implementation meet a
    quiet moment on a shared machine, and the minimum is the least noisy estimate."""
    best = {name: float("inf") for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            fn()  # warm-up: allocations, thread pools, torch kernel selection
            for _ in range(repeats):
                start = time.perf_counter()
                fn()
                best[name] = min(best[name], time.perf_counter() - start)
    return best


def reference() -> dict:
    """The namespace of the conv_layers solution cells (``solutions/conv_layers/oracle_reference.py`` runs them)."""
    spec = importlib.util.spec_from_file_location("conv_layers_reference",
                                                  ROOT / "solutions/conv_layers/oracle_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reference()


def run(dtype: str = "float64", repeats: int = 20, naive_repeats: int = 1, threads: int | None = None) -> dict:
    ref = reference()
    conv_forward_naive, conv_forward_im2col = ref["conv_forward_naive"], ref["conv_forward_im2col"]
    if threads:
        torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    c = CASE
    x = rng.standard_normal((c["N"], c["C"], c["H"], c["W"])).astype(dtype)
    w = rng.standard_normal((c["F"], c["C"], c["kernel"], c["kernel"])).astype(dtype)
    b = rng.standard_normal(c["F"]).astype(dtype)
    conv_param = {"stride": c["stride"], "padding": c["pad"]}
    tx, tw, tb = (torch.from_numpy(a) for a in (x, w, b))

    out_naive, _ = conv_forward_naive(x, w, b, conv_param)
    out_im2col, _ = conv_forward_im2col(x, w, b, conv_param)
    out_torch = F.conv2d(tx, tw, tb, stride=c["stride"], padding=c["pad"]).numpy()
    tol = 1e-10 if dtype == "float64" else 1e-4
    assert np.allclose(out_naive, out_torch, rtol=tol, atol=tol) and np.allclose(out_im2col, out_torch, rtol=tol, atol=tol)

    seconds = best_times({"naive forward": lambda: conv_forward_naive(x, w, b, conv_param)}, naive_repeats, rounds=1)
    seconds.update(best_times({
        "im2col forward": lambda: conv_forward_im2col(x, w, b, conv_param),
        "torch forward": lambda: F.conv2d(tx, tw, tb, stride=c["stride"], padding=c["pad"]),
    }, repeats))
    ratios = {
        "naive / im2col (forward)": seconds["naive forward"] / seconds["im2col forward"],
        "im2col / torch (forward)": seconds["im2col forward"] / seconds["torch forward"],
        "naive / torch (forward)": seconds["naive forward"] / seconds["torch forward"],
    }
    return {
        "case": {**CASE, "dtype": dtype},
        "seconds": seconds,
        "ratios": ratios,
        "machine": {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
                    "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "processor": platform.processor() or platform.machine()},
    }


def table(result: dict) -> str:
    c = result["case"]
    lines = [f"conv forward, N={c['N']}, C={c['C']}->{c['F']}, {c['H']}x{c['W']}, {c['kernel']}x{c['kernel']}, "
             f"stride {c['stride']}, pad {c['pad']}, {c['dtype']}, torch threads {result['machine']['torch_threads']}",
             f"{'implementation':<24}{'time (ms)':>12}"]
    lines += [f"{name:<24}{1000 * t:>12.3f}" for name, t in result["seconds"].items()]
    lines += [f"{name:<24}{r:>12.1f}x" for name, r in result["ratios"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--naive-repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=Path("reports/conv_speed.json"))
    args = parser.parse_args(argv)
    result = run(args.dtype, args.repeats, args.naive_repeats, args.threads)
    print(table(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
