"""Training utilities: pick a device, seed everything, ``fit()`` a classifier, ``evaluate()`` it.

The same notebook runs on a laptop CPU, an Apple GPU (mps) or NVIDIA GPUs without edits::

    model = small_cnn(10, 1)
    history = fit(model, train_loader, val_loader, epochs=5)    # device="auto": cuda -> mps -> cpu
    history.plot(); print(history.best_val_acc)

On CUDA, ``fit`` turns on mixed precision (bfloat16 autocast, or float16 with a gradient scaler on GPUs
without bfloat16) and channels_last memory format; on CPU and mps it trains in float32 -- ``amp=`` and
``channels_last=`` override. ``checkpoint="run.pt"`` saves model, optimizer, scaler, scheduler, RNG states
and history after every epoch and resumes from that file when it exists, so a rerun of an interrupted cell
continues where it stopped and ends with the same history as an uninterrupted run.

Several GPUs: put the code in a script and start it with ``torchrun --nproc_per_node=N script.py``. ``fit``
sees the torchrun environment, starts the process group (NCCL on GPUs, gloo on CPU), wraps the model in
``DistributedDataParallel`` and gives each process its own shard of the data with ``DistributedSampler``
(the batch size is per process). Metrics are averaged over all processes; only rank 0 shows progress and
writes the checkpoint.
"""
from __future__ import annotations

import math
import os
import random
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

__all__ = ["get_device", "seed_everything", "fit", "evaluate", "predict", "History", "NonFiniteLossError",
           "init_distributed", "resolve_amp"]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


# --------------------------------------------------------------------------------------------- device
def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def _describe(dev: torch.device) -> str:
    if dev.type == "cuda":
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        return f"{dev} ({torch.cuda.get_device_name(index)})"
    if dev.type == "mps":
        return "mps (Apple GPU)"
    return f"{dev} ({torch.get_num_threads()} threads)"


def get_device(device: str | torch.device | None = "auto", verbose: bool = True) -> torch.device:
    """The device to train on: ``"auto"`` picks CUDA if available, else Apple's mps, else CPU.

    Anything else (``"cpu"``, ``"cuda:1"``, a ``torch.device``) is checked and returned. Under ``torchrun``
    ``"auto"`` gives each process its own GPU, ``cuda:$LOCAL_RANK``. ``verbose`` prints the choice.
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        if torch.cuda.is_available():
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if _dist_active() else torch.device("cuda")
        elif _mps_available():
            dev = torch.device("mps")
        else:
            dev = torch.device("cpu")
    else:
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device={str(device)!r} was requested but PyTorch sees no CUDA GPU "
                               f"(torch {torch.__version__}). Use device='auto' or 'cpu'.")
        if dev.type == "mps" and not _mps_available():
            raise RuntimeError(f"device={str(device)!r} was requested but the Apple mps backend is not "
                               f"available. Use device='auto' or 'cpu'.")
    if verbose:
        print(f"Using device: {_describe(dev)}")
    return dev


def seed_everything(seed: int = 0, deterministic: bool = False) -> None:
    """Seed Python's ``random``, NumPy and PyTorch (CPU and all GPUs). ``deterministic=True`` also asks
    PyTorch for deterministic kernels (slower on GPU; some operations then raise)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    os.environ["PYTHONHASHSEED"] = str(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


def resolve_amp(amp, device: torch.device) -> torch.dtype | None:
    """The autocast dtype ``fit`` uses, or None for plain float32.

    ``"auto"``: bfloat16 on CUDA GPUs that support it, float16 on older ones, off on CPU and mps.
    ``True``: the same on CUDA, bfloat16 on CPU, float16 on mps. ``False``/None: off.
    ``"bf16"``/``"fp16"`` or a torch dtype: that dtype.
    """
    if amp is None or amp is False:
        return None
    if isinstance(amp, torch.dtype):
        return amp
    if amp in ("bf16", "bfloat16"):
        return torch.bfloat16
    if amp in ("fp16", "float16"):
        return torch.float16
    if amp not in ("auto", True):
        raise ValueError(f"amp must be 'auto', True, False, 'bf16' or 'fp16', got {amp!r}")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if amp is True:
        return torch.bfloat16 if device.type == "cpu" else torch.float16
    return None


def _resolve_channels_last(channels_last, device: torch.device) -> bool:
    if channels_last == "auto":
        return device.type == "cuda"  # tensor cores want NHWC; on CPU it is often slower
    return bool(channels_last)


# ------------------------------------------------------------------------------------ distributed
def _dist_active() -> bool:
    return dist.is_available() and dist.is_initialized()


def _is_main() -> bool:
    return not _dist_active() or dist.get_rank() == 0


def init_distributed() -> bool:
    """Start the process group when running under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment).
    NCCL with one GPU per process when CUDA is available, gloo otherwise. Returns whether DDP is on."""
    if _dist_active():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return False
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    return True


def _shard(loader: DataLoader, shuffle: bool) -> DataLoader:
    """The same loader, but each process reads its own 1/world_size of the dataset."""
    if isinstance(loader.sampler, DistributedSampler):
        return loader
    seed = loader.generator.initial_seed() if loader.generator is not None else 0
    sampler = DistributedSampler(loader.dataset, shuffle=shuffle, seed=seed)
    return DataLoader(loader.dataset, batch_size=loader.batch_size, sampler=sampler, num_workers=loader.num_workers,
                      collate_fn=loader.collate_fn, pin_memory=loader.pin_memory, drop_last=loader.drop_last)


def _all_reduce(values: list[float], device: torch.device) -> list[float]:
    if not _dist_active():
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


# -------------------------------------------------------------------------------------------- History
@dataclass
class History:
    """Per-epoch metrics from :func:`fit`. Accuracies are fractions in [0, 1]; ``epoch_time`` in seconds
    (training plus validation); ``lr`` the learning rate the epoch started with. ``train_loss``/``train_acc``
    are running averages over the epoch's batches (no extra pass over the training set)."""

    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    epoch_time: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)

    @property
    def epochs(self) -> int:
        return len(self.train_loss)

    @property
    def best_val_acc(self) -> float | None:
        return max(self.val_acc) if self.val_acc else None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        return cls(**{k: list(v) for k, v in d.items()})

    def plot(self, ax=None):
        """Loss (left) and accuracy (right) per epoch. ``ax``: None (new figure), two axes, or one axis (loss
        on it, accuracy on a twin axis). Returns the axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(1, 2, figsize=(10, 3.5), layout="constrained")
        axes = list(np.atleast_1d(ax))
        loss_ax, acc_ax = (axes[0], axes[1]) if len(axes) > 1 else (axes[0], axes[0].twinx())
        x = range(1, self.epochs + 1)
        loss_ax.plot(x, self.train_loss, "o-", label="train loss")
        acc_ax.plot(x, self.train_acc, "o-", label="train accuracy")
        if self.val_loss:
            loss_ax.plot(range(1, len(self.val_loss) + 1), self.val_loss, "s--", label="val loss")
            acc_ax.plot(range(1, len(self.val_acc) + 1), self.val_acc, "s--", label="val accuracy")
        loss_ax.set(xlabel="epoch", ylabel="cross-entropy loss")
        acc_ax.set(xlabel="epoch", ylabel="accuracy")
        for a in (loss_ax, acc_ax):
            a.legend()
        return loss_ax, acc_ax

    def __repr__(self) -> str:
        if not self.epochs:
            return "History(0 epochs)"
        text = f"History({self.epochs} epochs, train_acc={self.train_acc[-1]:.3f}"
        if self.val_acc:
            text += f", val_acc={self.val_acc[-1]:.3f} (best {self.best_val_acc:.3f})"
        return text + f", {sum(self.epoch_time):.1f} s)"


# ------------------------------------------------------------------------------------------- building
def _make_optimizer(optimizer, model: nn.Module, lr: float) -> torch.optim.Optimizer:
    if optimizer is None or optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr)
    if optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=lr)
    if optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    if callable(optimizer):  # e.g. lambda params: torch.optim.SGD(params, lr=0.1)
        return optimizer(model.parameters())
    raise ValueError(f"optimizer must be None, 'adam', 'adamw', 'sgd', an Optimizer or a factory, got {optimizer!r}")


_PER_BATCH = (torch.optim.lr_scheduler.OneCycleLR, torch.optim.lr_scheduler.CyclicLR)


def _make_scheduler(scheduler, optimizer, epochs: int, steps_per_epoch: int, lr: float):
    if scheduler is None:
        return None
    if scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    if scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, epochs=epochs,
                                                   steps_per_epoch=steps_per_epoch)
    if hasattr(scheduler, "step"):
        return scheduler
    if callable(scheduler):  # e.g. lambda opt: StepLR(opt, 10)
        return scheduler(optimizer)
    raise ValueError(f"scheduler must be None, 'cosine', 'onecycle', a scheduler or a factory, got {scheduler!r}")


def _progress(total, desc, enabled, leave):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=leave, dynamic_ncols=True)


# ------------------------------------------------------------------------------------------ checkpoint
def _rng_state(train_loader: DataLoader) -> dict:
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if getattr(train_loader, "generator", None) is not None:
        state["loader"] = train_loader.generator.get_state()
    return state


def _set_rng_state(state: dict, train_loader: DataLoader) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(tuple(tuple(x) if isinstance(x, list) else x for x in state["python"]))
    np.random.set_state((state["numpy"][0], np.array(state["numpy"][1], dtype=np.uint32), *state["numpy"][2:]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "loader" in state and getattr(train_loader, "generator", None) is not None:
        train_loader.generator.set_state(state["loader"])


def _save_checkpoint(path: Path, model, optimizer, scaler, scheduler, epoch: int, history: History,
                     train_loader) -> None:
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
             "history": history.to_dict(), "rng": _rng_state(train_loader),
             "scaler": scaler.state_dict() if scaler is not None else None,
             "scheduler": scheduler.state_dict() if scheduler is not None else None}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # atomic: an interrupted save never leaves a broken checkpoint


def _load_checkpoint(path: Path, model, optimizer, scaler, scheduler, train_loader, device) -> tuple[int, History]:
    # on the CPU: the RNG states must stay CPU tensors; load_state_dict moves weights and optimizer state
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        raise RuntimeError(f"The checkpoint {path} was saved from a different model, so training cannot resume "
                           f"from it. Delete it or pass another checkpoint= path.\n{err}") from err
    optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    if scheduler is not None and state.get("scheduler"):
        scheduler.load_state_dict(state["scheduler"])
    _set_rng_state(state["rng"], train_loader)
    return int(state["epoch"]), History.from_dict(state["history"])


# -------------------------------------------------------------------------------------------- training
def _to_device(x: torch.Tensor, y: torch.Tensor, device: torch.device, channels_last: bool):
    x = x.to(device, non_blocking=True)
    y = y.to(device, non_blocking=True)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y


def _autocast(device: torch.device, dtype):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def fit(model: nn.Module, train_loader: DataLoader, val_loader: DataLoader | None = None, epochs: int = 1,
        optimizer=None, lr: float = 1e-3, scheduler=None, device="auto", amp="auto", channels_last="auto",
        grad_clip: float | None = None, checkpoint: str | os.PathLike | None = None, progress: bool = True,
        loss_fn: nn.Module | None = None) -> History:
    """Train ``model`` (in place) for ``epochs`` epochs with cross-entropy; returns a :class:`History`.

    optimizer: None/"adam" (Adam, ``lr``), "adamw", "sgd" (momentum 0.9), an Optimizer, or a factory
        ``params -> Optimizer``.
    scheduler: None, "cosine" (per epoch), "onecycle" (per batch, peak ``lr``), a scheduler, or a factory
        ``optimizer -> scheduler``. OneCycleLR/CyclicLR step per batch, others per epoch
        (ReduceLROnPlateau on the validation loss, or the training loss without ``val_loader``).
    device/amp/channels_last: see :func:`get_device` and :func:`resolve_amp`; "auto" means mixed precision
        and channels_last on CUDA only.
    grad_clip: clip the gradient norm to this value (None: no clipping).
    checkpoint: file saved after each epoch; if it exists, training resumes from it.
    progress: tqdm bars (widgets in Jupyter, text in a terminal); False prints nothing.
    Raises :class:`NonFiniteLossError` naming the epoch and batch if the loss becomes NaN or infinite.
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    ddp = init_distributed()
    main = _is_main()
    device = get_device(device, verbose=progress and main)
    amp_dtype = resolve_amp(amp, device)
    channels_last = _resolve_channels_last(channels_last, device)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = _make_optimizer(optimizer, model, lr)
    if ddp:
        train_loader = _shard(train_loader, shuffle=True)
        val_loader = _shard(val_loader, shuffle=False) if val_loader is not None else None
    scheduler = _make_scheduler(scheduler, optimizer, epochs, len(train_loader), lr)
    per_batch = isinstance(scheduler, _PER_BATCH)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 and device.type == "cuda" else None
    loss_fn = loss_fn if loss_fn is not None else nn.CrossEntropyLoss()

    history, start = History(), 0
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    if checkpoint is not None and checkpoint.is_file():
        start, history = _load_checkpoint(checkpoint, model, optimizer, scaler, scheduler, train_loader, device)
        if progress and main:
            print(f"Resuming from {checkpoint} after epoch {start}")
    net = model
    if ddp:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    epoch_bar = _progress(epochs, "epochs", progress and main, leave=True)
    epoch_bar.update(min(start, epochs))
    for epoch in range(start, epochs):
        t0 = time.perf_counter()
        if isinstance(getattr(train_loader, "sampler", None), DistributedSampler):
            train_loader.sampler.set_epoch(epoch)
        history.lr.append(optimizer.param_groups[0]["lr"])
        train_loss, train_acc = _train_epoch(net, train_loader, optimizer, loss_fn, device, amp_dtype, scaler,
                                             channels_last, grad_clip, scheduler if per_batch else None, epoch,
                                             progress and main)
        history.train_loss.append(train_loss)
        history.train_acc.append(train_acc)
        if val_loader is not None:
            val = _evaluate(model, val_loader, device, amp_dtype, channels_last, loss_fn)
            history.val_loss.append(val["loss"])
            history.val_acc.append(val["acc"])
        if scheduler is not None and not per_batch:
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(history.val_loss[-1] if val_loader is not None else train_loss)
            else:
                scheduler.step()
        history.epoch_time.append(time.perf_counter() - t0)
        if checkpoint is not None and main:
            _save_checkpoint(checkpoint, model, optimizer, scaler, scheduler, epoch + 1, history, train_loader)
        postfix = {"loss": f"{train_loss:.3f}", "acc": f"{train_acc:.3f}"}
        if val_loader is not None:
            postfix["val_acc"] = f"{history.val_acc[-1]:.3f}"
        epoch_bar.set_postfix(postfix, refresh=False)
        epoch_bar.update(1)
    epoch_bar.close()
    return history


def _train_epoch(net, loader, optimizer, loss_fn, device, amp_dtype, scaler, channels_last, grad_clip,
                 batch_scheduler, epoch: int, show: bool) -> tuple[float, float]:
    """One pass over ``loader``; returns (mean loss, accuracy). Loss and hit counts stay on the device and are
    read back every ``sync_every`` batches (every batch on CPU, where reading is free), so a GPU is not
    stalled by a host sync after each step."""
    net.train()
    sync_every = 1 if device.type == "cpu" else 25
    pending: list[tuple[int, torch.Tensor, torch.Tensor, int]] = []
    loss_sum, correct, count = 0.0, 0, 0
    bar = _progress(len(loader), f"epoch {epoch + 1}", show, leave=False)

    def flush():
        nonlocal loss_sum, correct, count
        if not pending:
            return
        losses = torch.stack([p[1] for p in pending]).float().tolist()
        hits = torch.stack([p[2] for p in pending]).tolist()
        for (i, _, _, n), value, hit in zip(pending, losses, hits):
            if not math.isfinite(value):
                raise NonFiniteLossError(
                    f"The training loss became {value} in epoch {epoch + 1}, batch {i + 1} of {len(loader)}. "
                    f"Try a smaller learning rate (lr={optimizer.param_groups[0]['lr']:g}), grad_clip=1.0, or "
                    f"check the inputs and labels for NaN/inf values.")
            loss_sum += value * n
            correct += int(hit)
            count += n
        bar.update(len(pending))
        bar.set_postfix(loss=f"{loss_sum / count:.3f}", acc=f"{correct / count:.3f}", refresh=False)
        pending.clear()

    for i, (x, y) in enumerate(loader):
        x, y = _to_device(x, y, device, channels_last)
        with _autocast(device, amp_dtype):
            logits = net(x)
            loss = loss_fn(logits, y)
        pending.append((i, loss.detach(), (logits.argmax(1) == y).sum(), len(y)))
        if len(pending) >= sync_every:
            flush()  # on CPU this checks the loss before the step, so NaN never reaches the weights
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            if grad_clip is not None:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
            optimizer.step()
        if batch_scheduler is not None:
            batch_scheduler.step()
    flush()
    bar.close()
    loss_sum, correct, count = _all_reduce([loss_sum, correct, count], device)
    return loss_sum / max(count, 1), correct / max(count, 1)


@torch.inference_mode()
def _evaluate(model, loader, device, amp_dtype, channels_last, loss_fn) -> dict:
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    count = 0
    for x, y in loader:
        x, y = _to_device(x, y, device, channels_last)
        with _autocast(device, amp_dtype):
            logits = model(x)
            loss_sum += loss_fn(logits, y).double() * len(y)
        correct += (logits.argmax(1) == y).sum()
        count += len(y)
    model.train(was_training)
    loss_sum, correct, count = _all_reduce([loss_sum.item(), correct.item(), count], device)
    return {"loss": loss_sum / max(count, 1), "acc": correct / max(count, 1)}


def _model_device(model: nn.Module, device) -> torch.device:
    if device is None or device == "auto":
        p = next(model.parameters(), None)
        return p.device if p is not None else torch.device("cpu")
    dev = get_device(device, verbose=False)
    model.to(dev)
    return dev


def evaluate(model: nn.Module, loader: DataLoader, device="auto", amp=False,
             loss_fn: nn.Module | None = None) -> dict:
    """Mean cross-entropy loss and accuracy of ``model`` on ``loader``: ``{"loss": float, "acc": float}``.

    ``device="auto"`` evaluates where the model's parameters are (after :func:`fit`, the training device);
    another value moves the model there. The model is put in eval mode and restored afterwards.
    """
    device = _model_device(model, device)
    loss_fn = loss_fn if loss_fn is not None else nn.CrossEntropyLoss()
    return _evaluate(model, loader, device, resolve_amp(amp, device), False, loss_fn)


@torch.inference_mode()
def predict(model: nn.Module, loader: DataLoader, device="auto") -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted classes and true labels for every example in ``loader``, as two int64 CPU tensors
    (for confusion matrices and error galleries)."""
    device = _model_device(model, device)
    was_training = model.training
    model.eval()
    preds, labels = [], []
    for x, y in loader:
        preds.append(model(x.to(device)).argmax(1).cpu())
        labels.append(y)
    model.train(was_training)
    return torch.cat(preds), torch.cat(labels)
