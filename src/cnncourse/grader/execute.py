"""``SandboxedExecute``: nbgrader's ``Execute`` with the kernel in the sandbox and limits that never cost a
student the points already earned.

* a whole-notebook deadline (cells after it are not run and score 0) on top of nbgrader's per-cell timeout;
* a cell that ignores the interrupt (or blocks in one long C call) is killed with its kernel and recorded as
  ``timed out (kernel ignored the interrupt)``; a dead kernel (``os._exit``, memory cap, process cap) is
  recorded as crashed; in both cases the cells before keep their outputs, hence their points;
* output caps per cell and per notebook;
* a process cap, enforced by a watchdog thread (``RLIMIT_NPROC`` does not bind root);
* before every test cell, the hooks a submission installed are cleared (``kernel_guard``); a kernel that no
  longer replies to the grader's requests (a submission can silence its own ``execute_reply``) is killed and
  recorded as crashed, so it costs at most one ``RESET_WAIT_S`` wait, not one per test cell.

What happened is returned in ``resources["cnncourse"]["events"]`` (a list of ``{"kind", "message"}``).
"""
from __future__ import annotations

import json
import math
import os
import queue
import threading
import time

import nbformat
from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbgrader.preprocessors import Execute
from traitlets import Integer

from cnncourse.grader.kernel import SandboxedKernelManager
from cnncourse.grader.procs import descendants, kill_sandbox

OUTPUT_TYPES = ("stream", "display_data", "execute_result", "update_display_data")
RESET_WAIT_S = 30.0  # the grader's own tiny requests (install, reset): no reply in this long -> the kernel is mute


def error_output(ename: str, evalue: str) -> nbformat.NotebookNode:
    """An error output nbgrader scores as a failed cell."""
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def folder_usage(folder: str | None) -> tuple[int, int]:
    """(bytes, entries) under ``folder``, nothing followed; (0, 0) when it is gone."""
    size = count = 0
    for top, dirs, files in os.walk(folder or "", followlinks=False):
        for name in dirs + files:
            count += 1
            try:
                size += os.lstat(os.path.join(top, name)).st_size
            except OSError:
                pass
    return size, count


class ProcessWatchdog(threading.Thread):
    """Kills the kernel's processes (not the kernel's launcher) when there are more than ``max_procs``, or when
    ``folder`` (the ipc folder: bound read-write into the sandbox, on the grader's disk, outside the kernel's
    /tmp budget) holds more than ``max_bytes`` or 1,000 entries."""

    def __init__(self, pid: int, max_procs: int, interval: float = 0.25, folder: str | None = None,
                 max_bytes: int = 0, kernel: int | None = None):
        super().__init__(daemon=True)
        self.pid, self.max_procs, self.interval = pid, max_procs, interval
        self.kernel = kernel  # a warm kernel (zygote.py) is not a descendant of the sandbox's process
        self.folder, self.max_bytes = folder, max_bytes
        self.stopped = threading.Event()
        self.reason: str | None = None

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            count = len(descendants(self.pid)) + (len(descendants(self.kernel)) + 1 if self.kernel else 0)
            if count > self.max_procs:
                self.reason = f"the process limit ({self.max_procs}) was exceeded (a fork bomb?) and the kernel was killed"
                self.kill()
            elif self.folder is not None:
                size, count = folder_usage(self.folder)
                if size > self.max_bytes or count > 1000:
                    self.reason = ("files written outside the working folder went over the disk budget and the "
                                   "kernel was killed")
                    self.kill()

    def kill(self) -> None:
        kill_sandbox(self.pid, self.kernel)


class SandboxedExecute(Execute):
    """nbgrader's ``Execute`` in the sandbox, with the limits above (traitlets-configured)."""

    timeout_notebook = Integer(600, help="seconds for all cells of a notebook").tag(config=True)
    output_bytes = Integer(1_000_000, help="output one cell may produce (bytes)").tag(config=True)
    notebook_output_bytes = Integer(5_000_000, help="output a whole notebook may produce").tag(config=True)
    max_procs = Integer(64, help="processes a kernel may have at once").tag(config=True)

    def __init__(self, *args, **kwargs):
        kwargs["kernel_manager_class"] = SandboxedKernelManager
        super().__init__(*args, **kwargs)

    def create_kernel_manager(self):
        """The sandboxed kernel manager; with ``zygote = "auto"`` (plain ``nbgrader autograde``) its kernel
        comes from this process's zygote for the notebook's own imports (``warm.shared``)."""
        km = super().create_kernel_manager()
        if km.sandbox and km.zygote == "auto":
            from cnncourse.grader import sandbox, warm

            km.zygote = warm.shared(warm.modules_of([self.nb]), sandbox.clean_env(km.threads))
        return km

    def preprocess(self, nb, resources=None, km=None):
        resources = resources if resources is not None else {}
        self._events = resources.setdefault("cnncourse", {}).setdefault("events", [])
        self._name = resources.get("unique_key", "notebook")
        self._cell_timeout = self.timeout or 60
        self._deadline: float | None = None  # starts at the first cell: kernel start-up is not counted
        self._stop: str | None = None
        self._cell_bytes: dict[int, int] = {}
        self._total_bytes = 0
        self._guard = f"_cnncourse_guard_{os.urandom(8).hex()}"
        self._watchdog: ProcessWatchdog | None = None
        try:
            return super().preprocess(nb, resources, km)
        finally:
            if self._watchdog is not None:
                self._watchdog.stopped.set()

    def _note(self, kind: str, message: str) -> None:
        self._events.append({"kind": kind, "message": f"{self._name}: {message}"})

    def output(self, outs, msg, display_id, cell_index):
        if msg["msg_type"] not in OUTPUT_TYPES:
            return super().output(outs, msg, display_id, cell_index)
        content = msg.get("content", {})
        size = len(json.dumps(content.get("data") or content.get("text", "")))
        used = self._cell_bytes.get(cell_index, 0)
        self._cell_bytes[cell_index] = used + size
        self._total_bytes += size
        if used + size > self.output_bytes or self._total_bytes > self.notebook_output_bytes:
            which = (f"more than {self.output_bytes} bytes in this cell" if used + size > self.output_bytes
                     else f"more than {self.notebook_output_bytes} bytes in this notebook")
            note = f"\n[output truncated by the grader: {which}]\n"
            if not any(o.get("text") == note for o in outs):
                outs.append(nbformat.v4.new_output("stream", name="stdout", text=note))
            return None
        return super().output(outs, msg, display_id, cell_index)

    def _kernel_pid(self) -> int | None:
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        return getattr(process, "pid", None)

    def _kill_kernel(self) -> None:
        kill_sandbox(self._kernel_pid(), getattr(self.km, "kernel_host_pid", None))

    def _start_watch(self) -> None:
        pid = self._kernel_pid()
        if pid is not None:
            box = getattr(self.km, "_box", None)
            self._watchdog = ProcessWatchdog(pid, self.max_procs, folder=str(box / "ipc") if box else None,
                                             max_bytes=getattr(self.km, "disk_mb", 1024) * 1024 * 1024,
                                             kernel=getattr(self.km, "kernel_host_pid", None))
            self._watchdog.start()
        install = f"__import__('cnncourse.grader.kernel_guard', fromlist=['install']).install({self._guard!r})"
        if run_sync(self._quiet)(install) != "ok":
            self._note("crashed", "the grader could not prepare the kernel")

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code" or not cell.source.strip():
            return cell, self.resources
        if self._stop:
            cell.outputs = [error_output("NotRun", self._stop)]
            return cell, self.resources
        if self._deadline is None:
            self._deadline = time.monotonic() + self.timeout_notebook
            self._start_watch()
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            self._stop = (f"the notebook time limit ({self.timeout_notebook} s) was reached: this cell and the "
                          "ones after it were not run")
            self._note("timed out", f"notebook time limit ({self.timeout_notebook} s) at cell {index}")
            cell.outputs = [error_output("NotebookTimeout", self._stop)]
            return cell, self.resources
        self.timeout = max(1, int(math.ceil(min(self._cell_timeout, remaining))))
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and not meta.get("solution"):
            reset = f"__import__('sys').modules[{self._guard!r}].reset()"
            wait = min(RESET_WAIT_S, remaining)
            status = run_sync(self._quiet)(reset, wait)
            status = run_sync(self._quiet)(reset, wait) if status == "ok" else status
            if status is None:  # alive, maybe answering kernel_info, but no reply to what it runs: tampered with
                self._kill_kernel()
                self._stop = ("the kernel stopped answering the grader (tampered with?): it was killed; this cell "
                              "and the ones after it were not run")
                self._note("crashed", f"cell {index}: the kernel stopped answering the grader")
                cell.outputs = [error_output("KernelStoppedAnswering", self._stop)]
                return cell, self.resources
            if status != "ok":
                self._note("crashed", f"cell {index}: the kernel's hooks could not be reset (tampered with?)")
        try:
            cell, resources = super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            reason = (self._watchdog and self._watchdog.reason) or \
                "the kernel died (os._exit, a crash or the memory limit)"
            self._stop = f"{reason} while running this cell; later cells were not run"
            self._note("crashed", f"{reason} in cell {index}")
            cell.outputs.append(error_output("KernelDied", self._stop))
            return cell, self.resources
        except CellTimeoutError:
            self._kill_kernel()
            self._stop = ("timed out (kernel ignored the interrupt): the kernel was killed; later cells were "
                          "not run")
            self._note("timed out", f"cell {index} timed out (kernel ignored the interrupt)")
            cell.outputs.append(error_output("CellTimeoutError", self._stop))
            return cell, self.resources
        if any(o.get("output_type") == "error" and o.get("ename") == "CellTimeoutError" for o in cell.outputs):
            limit = "notebook" if self.timeout < self._cell_timeout else "cell"
            self._note("timed out", f"{limit} time limit ({self.timeout} s) at cell {index}")
            if not run_sync(self._responsive)():
                self._kill_kernel()
                self._stop = "timed out (kernel ignored the interrupt): the kernel was killed; later cells were not run"
                self._events[-1]["message"] += " (kernel ignored the interrupt)"
        return cell, self.resources

    async def _reply(self, msg_id: str, wait: float) -> dict | None:
        """The kernel's shell reply to ``msg_id``, or None when it does not come within ``wait`` seconds."""
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = await self.kc.shell_channel.get_msg(timeout=left)
            except queue.Empty:
                return None
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg
        return None

    async def _quiet(self, code: str, wait: float = RESET_WAIT_S) -> str | None:
        """Run grader code in the kernel without touching the notebook (no outputs, no history): the reply's
        status ("ok", "error"), or None when no reply came within ``wait`` seconds."""
        msg_id = self.kc.execute(code, silent=True, store_history=False, allow_stdin=False)
        reply = await self._reply(msg_id, wait)
        return None if reply is None else reply["content"].get("status")

    async def _responsive(self, wait: float = 5.0) -> bool:
        """After a timeout (and the interrupt): does the kernel answer again?"""
        return await self._reply(self.kc.kernel_info(), wait) is not None
