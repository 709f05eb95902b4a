"""conv_arithmetic's oracle measures sizes, parameters and MACs on torch's meta device (no weights, no
arithmetic). The numbers must be the ones real CPU tensors give, for every kind of case the oracle draws; its
MACs (torch's FLOP formulas applied by forward hooks) must be FlopCounterMode's, and grading with it must not
import torch's compiler."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

FOLDER = Path(__file__).resolve().parents[2] / "solutions" / "conv_arithmetic"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"_meta_test_{name}", FOLDER / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(FOLDER))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(FOLDER))
    return module


def measurements(oracle, network, seeds: range) -> dict:
    """Every value the oracle measures with torch for the cases of ``seeds`` (plus AlexNet)."""
    from torch import nn

    out: dict = {"alexnet": network.network_rows(network.ALEXNET, network.ALEXNET_INPUT)}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        for i, case in enumerate(oracle._conv_cases(rng)):
            (n, k), kw = case["args"], case["kwargs"]
            out[seed, "conv", i] = oracle._side(nn.Conv2d(1, 1, k, device=network.META, **kw), n)
        for i, case in enumerate(oracle._pool_cases(rng)):
            (n, k), kw = case["args"], case["kwargs"]
            out[seed, "pool", i] = oracle._side(nn.MaxPool2d(k, **kw), n)
        for i, case in enumerate(oracle._transposed_cases(rng)):
            (n, k), kw = case["args"], case["kwargs"]
            out[seed, "transposed", i] = oracle._side(nn.ConvTranspose2d(1, 1, k, device=network.META, **kw), n)
        for i, case in enumerate(oracle._macs_cases(rng)):
            c, f, k, side = case["args"]
            out[seed, "macs", i] = network.macs_of(nn.Conv2d(c, f, k, bias=False, device=network.META),
                                                    torch.zeros(1, c, side + k - 1, side + k - 1,
                                                                device=network.META))[1]
        for i, case in enumerate(oracle._params_cases(rng)):
            c, f, k = case["args"]
            out[seed, "params", i] = sum(t.numel() for t in nn.Conv2d(c, f, k, device=network.META).parameters())
        for i, case in enumerate(network.network_cases(rng)):
            out[seed, "network", i] = network.network_rows(*case["args"])
    return out


def test_meta_device_measures_what_cpu_tensors_measure(monkeypatch):
    oracle, network = load("oracle"), sys.modules["oracle_network"]
    assert network.META.type == "meta"
    on_meta = measurements(oracle, network, range(4))
    monkeypatch.setattr(network, "META", torch.device("cpu"))
    monkeypatch.setattr(oracle, "META", torch.device("cpu"))
    on_cpu = measurements(oracle, network, range(4))
    assert len(on_meta) > 4 * 150
    assert on_meta == on_cpu
    assert on_meta["alexnet"][0] == ("conv1", (96, 55, 55), 34_944, 105_415_200)  # the lecture's conv1


def test_macs_are_flop_counter_modes(monkeypatch):
    """The hooks count what FlopCounterMode counts, on every MAC case and every network the oracle draws."""
    from torch.utils.flop_counter import FlopCounterMode

    def flop_counter_macs(layer, x):
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            out = layer(x)
        return out, counter.get_total_flops() // 2

    oracle, network = load("oracle"), sys.modules["oracle_network"]
    hooks = measurements(oracle, network, range(4))
    monkeypatch.setattr(network, "macs_of", flop_counter_macs)
    monkeypatch.setattr(network, "_Linear", torch.nn.Linear)  # torch's own layer, bias addition included
    assert measurements(oracle, network, range(4)) == hooks


def test_grading_conv_arithmetic_does_not_import_torchs_compiler():
    """Every check of the oracle, in a fresh process: torch._dynamo (1.2-1.5 s of imports) stays out."""
    code = (f"import sys; sys.path.insert(0, {str(FOLDER)!r}); import numpy as np; import oracle\n"
            "for name, test in oracle.TESTS.items():\n"
            "    for case in test.cases(np.random.default_rng(0)):\n"
            "        test.check(case, 0)\n"
            "print('torch._dynamo' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


@pytest.fixture(autouse=True)
def _forget_siblings():
    yield
    sys.modules.pop("oracle_network", None)


FORK_AFTER_PRELOAD = """
import os, sys
from pathlib import Path
import torch
from cnncourse.grader import scheduler
from cnncourse.grader.layout import Course
scheduler.preload(Course.load(Path(sys.argv[1])), sys.argv[2])
pid = os.fork()
if pid == 0:  # a worker of `cnncourse grade --jobs 1` on 2 cores computes on 2 threads
    torch.set_num_threads(2)
    x = torch.ones(1, 4, 64, 64, requires_grad=True)
    torch.nn.functional.conv2d(x, torch.ones(8, 4, 3, 3)).sum().backward()
    os._exit(0)
print(os.waitpid(pid, 0)[1])
"""


@pytest.mark.parametrize("assignment", sorted(p.name for p in FOLDER.parent.iterdir() if (p / "oracle.py").is_file()))
def test_workers_forked_after_the_preload_can_compute_on_threads(assignment):
    """The run's preload must not start torch's thread pool: a worker forked after it that computes on two
    threads deadlocked (a preload that ran an oracle check on CPU tensors hung every --jobs 1 run)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    proc = subprocess.run([sys.executable, "-c", FORK_AFTER_PRELOAD, str(FOLDER.parents[1]), assignment],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "0", "the forked worker failed"
