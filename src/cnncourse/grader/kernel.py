"""The kernel manager of graded notebooks: every kernel starts in the bubblewrap sandbox (see ``sandbox.py``)
with a clean environment, its limits, and a private copy of the notebook folder; jupyter_client talks to it
over ``ipc`` sockets in a folder bound into the sandbox. Configured by traitlets (``SandboxedKernelManager.*``
in the worker's config)."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from traitlets import Bool, Integer, Unicode

from cnncourse.grader import sandbox

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
            cmd = [*sandbox.base_args(bwrap, ipc, self.disk_mb, root, self._box / "in"), "--",
                   sys.executable, "-I", "-S", "-c", sandbox.LAUNCHER, sandbox.INBOX, sandbox.WORKDIR, *limits, *cmd]
        else:
            cmd = [sys.executable, "-I", "-S", "-c", sandbox.LAUNCHER, str(self._box / "in"),
                   str(self._box / "work"), *limits, *cmd]
        kw["cwd"] = str(self._box)
        kw["stdout"] = subprocess.DEVNULL  # ipykernel's start-up banners; errors still go to stderr (the log)
        kw["env"] = sandbox.clean_env(self.threads)
        return cmd, kw

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        box = getattr(self, "_box", None)
        if box is not None and not restart:
            shutil.rmtree(box, ignore_errors=True)
