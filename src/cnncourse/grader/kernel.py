"""The kernel manager of graded notebooks: every kernel starts in the bubblewrap sandbox (see ``sandbox.py``)
with a clean environment, its limits, and a private copy of the notebook folder; jupyter_client talks to it
over ``ipc`` sockets in a folder bound into the sandbox. Configured by traitlets (``SandboxedKernelManager.*``
in the worker's config)."""
from __future__ import annotations

import copy
import json
import math
import os
import queue
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from traitlets import Bool, Integer, Unicode, default

from cnncourse.channels import ReliableKernelClient
from cnncourse.grader import procs, sandbox, warm

MB = 1024 * 1024
SKIP = (".ipynb", ".ipynb_checkpoints", "__pycache__")


def copy_inbox(folder: Path, inbox: Path) -> None:
    """Copy what the kernel may see of ``folder`` into ``inbox``: regular files and folders only (checked
    with ``lstat``, nothing followed), never a notebook (graded notebooks hold the hidden tests)."""
    inbox.mkdir(parents=True, exist_ok=True)
    if not folder.is_dir():
        return
    for entry in os.scandir(folder):
        if entry.name.endswith(SKIP):
            continue
        mode = entry.stat(follow_symlinks=False).st_mode
        if stat.S_ISDIR(mode):
            copy_inbox(Path(entry.path), inbox / entry.name)
        elif stat.S_ISREG(mode):
            shutil.copyfile(entry.path, inbox / entry.name, follow_symlinks=False)


_SPECS: dict[tuple[type, str], object] = {}  # (spec manager class, kernel name) -> spec, per process


def _kernel_spec(manager, name: str):
    """A copy of the spec ``manager`` finds for ``name``, looked up once per process (each kernel manager
    changes its copy's interrupt mode)."""
    key = (type(manager), name)
    if key not in _SPECS:
        _SPECS[key] = manager.get_kernel_spec(name)
    return copy.deepcopy(_SPECS[key])


class ReadyClient(ReliableKernelClient):
    """Kernel client on channels that never miss a waiting message (``cnncourse.channels``) whose
    ``wait_for_ready`` returns as soon as the kernel has answered ``kernel_info`` and IOPub has delivered a
    message. jupyter_client then also waits for 0.2 s of IOPub silence before returning, on every kernel
    start; the grader does not need that silence, since nbclient and the grader's own requests ignore every
    message that is not a reply to them."""

    def _context_default(self):
        """Sockets that retry connecting every 10 ms (zmq's default is 100 ms): the client connects before the
        kernel has bound its sockets, so every retry interval is a wait at each kernel start."""
        import zmq
        import zmq.asyncio

        self._created_context = True
        context = zmq.asyncio.Context()
        context.setsockopt(zmq.RECONNECT_IVL, 10)
        return context

    async def wait_for_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (math.inf if timeout is None else timeout)
        while True:
            self.kernel_info()
            try:
                reply = await self.shell_channel.get_msg(timeout=1)
            except queue.Empty:
                reply = None
            if reply is not None and reply["msg_type"] == "kernel_info_reply":
                try:  # IOPub connected? (a subscription made after the kernel's first status is lost: ask again)
                    await self.iopub_channel.get_msg(timeout=0.05)
                except queue.Empty:
                    pass
                else:
                    self._handle_kernel_info_reply(reply)
                    return
            if not await self._async_is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout} seconds")


class SandboxedKernelManager(AsyncKernelManager):
    """``AsyncKernelManager`` that wraps the kernel command in bwrap (or, with ``sandbox=False``, only in the
    limits launcher) and removes the kernel's scratch folder when the kernel is cleaned up."""

    sandbox = Bool(True, help="run the kernel in the bubblewrap sandbox").tag(config=True)
    memory_mb = Integer(4096, help="address-space cap of the kernel (MB, 0 = none)").tag(config=True)
    file_mb = Integer(1024, help="largest file the kernel may write (MB, 0 = none)").tag(config=True)
    disk_mb = Integer(1024, help="size of the kernel's private /tmp (MB)").tag(config=True)
    threads = Integer(1, help="BLAS/OpenMP threads of the kernel").tag(config=True)
    course_root = Unicode("", help="course folder: never visible to the kernel").tag(config=True)
    scratch_dir = Unicode("", help="where kernel scratch folders go (default: the system's)").tag(config=True)
    zygote = Unicode("auto", help="socket of a kernel zygote: fork a warm kernel into the sandbox instead of "
                                  "starting Python and ipykernel in it (see zygote.py); 'auto' = this process's "
                                  "own zygote, started by the first kernel (SandboxedExecute); '' = start "
                                  "every kernel cold").tag(config=True)
    kernel_host_pid: int | None = None  # a zygote kernel's pid (not a descendant of the bwrap process)

    @default("client_factory")
    def _ready_client(self):
        return ReadyClient

    @property
    def kernel_spec(self):
        """The kernel spec, looked up once per process and name (a lookup scans every Jupyter data folder:
        0.03 s per submission); the grading run's preload fills it before forking its workers."""
        if self._kernel_spec is None and self.kernel_name != "":
            self._kernel_spec = _kernel_spec(self.kernel_spec_manager, self.kernel_name)
        return self._kernel_spec

    async def _async_wait(self, pollinterval: float = 0.01) -> None:
        """Poll a killed kernel every 10 ms instead of jupyter_client's 100 ms (once per submission)."""
        await super()._async_wait(pollinterval=pollinterval)

    async def _async_pre_start_kernel(self, **kw):
        folder = Path(kw.get("cwd") or os.getcwd())
        self._box = Path(tempfile.mkdtemp(prefix="k", dir=self.scratch_dir or None))
        ipc = self._box / "ipc"
        ipc.mkdir()
        copy_inbox(folder, self._box / "in")
        self.transport, self.ip = "ipc", str(ipc / "k")
        self.connection_file = str(ipc / "kernel.json")
        if self.sandbox:  # SIGINT would stop bwrap itself: ask the kernel to interrupt itself
            self.kernel_spec.interrupt_mode = "message"
        cmd, kw = await super()._async_pre_start_kernel(**kw)
        limits = [str(self.memory_mb * MB), str(self.file_mb * MB)]
        if self.sandbox:
            bwrap = sandbox.bwrap_path()
            if bwrap is None:
                raise RuntimeError(sandbox.probe()[1])
            root = Path(self.course_root) if self.course_root else None
            cmd = [sandbox.IPC + "/inside.json" if arg == self.connection_file else arg for arg in cmd]
            info = json.loads(Path(self.connection_file).read_text())
            info["ip"] = sandbox.IPC + "/k"  # the same sockets, at the path the sandbox sees them
            (ipc / "inside.json").write_text(json.dumps(info))
            self._warm, extra = None, []
            if self.zygote not in ("", "auto") and cmd[1:3] == ["-m", "ipykernel_launcher"]:
                cache = sandbox.font_cache()
                self._warm = {"args": cmd[3:], "env": sandbox.clean_env(self.threads), "inbox": sandbox.INBOX,
                              "workdir": sandbox.WORKDIR, "memory": self.memory_mb * MB, "fsize": self.file_mb * MB,
                              "mplcache": sandbox.MPLCACHE if cache else "", "uid": sandbox.SANDBOX_UID}
                # the placeholder is PID 1: a signal from inside the sandbox cannot end it (nor the sandbox)
                extra, cmd = ["--as-pid-1"], list(warm.PLACEHOLDER)
            else:
                cmd = [sys.executable, "-I", "-S", "-c", sandbox.LAUNCHER, sandbox.INBOX, sandbox.WORKDIR, *limits,
                       *cmd]
            cmd = [*sandbox.base_args(bwrap, ipc, self.disk_mb, root, self._box / "in"), *extra, "--", *cmd]
        else:
            cmd = [sys.executable, "-I", "-S", "-c", sandbox.LAUNCHER, str(self._box / "in"),
                   str(self._box / "work"), *limits, *cmd]
        kw["cwd"] = str(self._box)
        kw["stdout"] = subprocess.DEVNULL  # ipykernel's start-up banners; errors still go to stderr (the log)
        kw["env"] = sandbox.clean_env(self.threads)
        return cmd, kw

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw) -> None:
        await super()._async_launch_kernel(kernel_cmd, **kw)
        if getattr(self, "_warm", None) is not None:
            target = warm.placeholder_pid(self.provisioner.process.pid)
            self.kernel_host_pid = warm.spawn(self.zygote, {**self._warm, "target": target}, sys.stderr.fileno())

    async def _async_is_alive(self) -> bool:
        """The sandbox runs and, for a warm kernel (not the sandbox's process), the kernel too; a warm kernel
        that has exited (shut down, crashed) takes its sandbox along, which jupyter_client then waits for."""
        alive = await super()._async_is_alive()
        if alive and self.kernel_host_pid and not procs.running(self.kernel_host_pid):
            procs.kill_tree(self.provisioner.process.pid)
            return False
        return alive

    is_alive = _async_is_alive  # AsyncKernelManager binds is_alive to the base class's function

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        box = getattr(self, "_box", None)
        if box is not None and not restart:
            shutil.rmtree(box, ignore_errors=True)
