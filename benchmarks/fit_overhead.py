"""How much does ``cnncourse.train.fit`` cost over a bare PyTorch training loop?

Trains the same small CNN on the same generated ``shapes()`` data, alternating ``fit()`` runs and runs of a
bare 10-line loop (order swapped every repeat), and prints the median epoch time of each and their ratio.
The first epoch of every run is dropped (allocator and kernel warm-up). ``fit`` runs in float32 without
channels_last here, like the bare loop, so the ratio is the cost of the bookkeeping (device transfer,
accuracy, NaN check, progress bars, History). On a GPU it also reports training throughput (images/s)
through ``fit`` with and without mixed precision and channels_last, on a larger model and batch.

    python benchmarks/fit_overhead.py                    # CPU or whatever get_device("auto") finds
    python benchmarks/fit_overhead.py --threads 1        # on a shared machine: less noise

Writes ``reports/fit_overhead.json``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from cnncourse import data, models, train


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def bare_loop(model, loader, epochs: int, device: torch.device, lr: float) -> list[float]:
    """The baseline: the shortest correct PyTorch loop. Returns seconds per epoch."""
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sync(device)
        times.append(time.perf_counter() - t0)
    return times


def fit_loop(model, loader, epochs, device, lr, progress=False, amp=False, channels_last=False) -> list[float]:
    quiet = open(os.devnull, "w")
    with contextlib.redirect_stderr(quiet), contextlib.redirect_stdout(quiet):  # bars drawn, not shown
        history = train.fit(model, loader, None, epochs=epochs, lr=lr, device=device, amp=amp,
                            channels_last=channels_last, progress=progress)
    quiet.close()
    return history.epoch_time


def overhead(args, device) -> dict:
    train_ds, _ = data.shapes(n=args.n, size=32, seed=0, val_fraction=0.0)
    loader, _ = data.make_loaders(train_ds, None, batch_size=args.batch_size, seed=0)
    make_model = lambda: models.small_cnn(len(train_ds.classes), 3, widths=(32, 64, 128))  # noqa: E731
    runs = {"bare": [], "fit": [], "fit_progress": []}
    for r in range(args.repeats):
        order = ["fit", "bare", "fit_progress"] if r % 2 == 0 else ["fit_progress", "bare", "fit"]
        for name in order:
            train.seed_everything(r)
            model = make_model()
            if name == "bare":
                times = bare_loop(model, loader, args.epochs, device, args.lr)
            else:
                times = fit_loop(model, loader, args.epochs, device, args.lr, progress=name == "fit_progress")
            runs[name] += times[1:]
            print(f"repeat {r + 1} {name:>12}: " + " ".join(f"{t:.3f}" for t in times[1:]) + " s/epoch", flush=True)
    med = {k: statistics.median(v) for k, v in runs.items()}
    return {"median_epoch_s": med, "epoch_times_s": runs,
            "ratio_fit_over_bare": med["fit"] / med["bare"],
            "ratio_fit_progress_over_bare": med["fit_progress"] / med["bare"],
            "images_per_epoch": len(train_ds), "batch_size": args.batch_size, "epochs_per_run": args.epochs,
            "repeats": args.repeats, "model": "small_cnn(6, 3, widths=(32, 64, 128))"}


class DeviceBatches:
    """Shuffled batches sliced from tensors already on the GPU (a DataLoader would index them one by one)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int = 0):
        self.x, self.y, self.batch_size = x, y, batch_size
        self._gen = torch.Generator(device=x.device).manual_seed(seed)

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch_size)

    def __iter__(self):
        perm = torch.randperm(len(self.x), device=self.x.device, generator=self._gen)
        for i in range(0, len(self.x), self.batch_size):
            idx = perm[i:i + self.batch_size]
            yield self.x[idx], self.y[idx]


def gpu_throughput(args, device) -> dict:
    """Images/s through fit() for each amp x channels_last setting (median over epochs after the first), for a
    small CIFAR-style net (resnet20 on 32x32) and an ImageNet-style one (resnet18 on 112x112)."""
    configs = [("resnet20(6), 32x32", lambda: models.resnet20(6), 32, args.gpu_n, args.gpu_batch_size),
               ("resnet18(6), 112x112", lambda: models.resnet18(6), 112, args.gpu_n // 4, args.gpu_batch_size)]
    out = {}
    for label, make_model, size, n, batch_size in configs:
        train_ds, _ = data.shapes(n=n, size=size, seed=0, val_fraction=0.0)
        # keep the data on the GPU so the loader is not the bottleneck of the comparison
        loader = DeviceBatches(train_ds.tensors[0].to(device), train_ds.tensors[1].to(device), batch_size)
        results = {}
        for amp in (False, True):
            for channels_last in (False, True):
                train.seed_everything(0)
                times = fit_loop(make_model(), loader, args.gpu_epochs, device, args.lr, amp=amp,
                                 channels_last=channels_last)
                med = statistics.median(times[1:])
                key = f"amp={amp},channels_last={channels_last}"
                results[key] = {"images_per_s": n / med, "median_epoch_s": med,
                                "amp_dtype": str(train.resolve_amp(amp, device))}
                print(f"{label:>22} {key:>34}: {n / med:10.0f} images/s", flush=True)
        out[label] = {"images": n, "batch_size": batch_size, "runs": results}
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4, help="epochs per run (the first is dropped)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n", type=int, default=1024, help="training images (shapes, 32x32)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--gpu-n", type=int, default=16384)
    parser.add_argument("--gpu-batch-size", type=int, default=256)
    parser.add_argument("--gpu-epochs", type=int, default=4)
    parser.add_argument("--out", default="reports/fit_overhead.json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = train.get_device(args.device)
    report = {"device": str(device), "torch": torch.__version__, "python": platform.python_version(),
              "threads": torch.get_num_threads(), "overhead": overhead(args, device)}
    o = report["overhead"]
    print(f"median epoch: fit {o['median_epoch_s']['fit']:.3f} s, bare loop {o['median_epoch_s']['bare']:.3f} s, "
          f"ratio {o['ratio_fit_over_bare']:.3f} (with progress bars {o['ratio_fit_progress_over_bare']:.3f})")
    if device.type == "cuda":
        report["gpu_name"] = torch.cuda.get_device_name(device)
        report["throughput"] = gpu_throughput(args, device)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
