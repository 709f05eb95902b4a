"""Warm kernels (cnncourse.grader.zygote): a kernel forked by the run's zygote into a submission's sandbox must
be as confined as a kernel started in it: the sandbox's processes only, uid 1000, no capabilities, no way to
gain any, a clean environment, no file descriptor or folder of the grader's; and it lives exactly as long as
its sandbox."""
from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
from helpers import run_in_thread as run

from cnncourse.grader import procs, sandbox, tracebacks, warm, zygote
from cnncourse.grader.kernel import SandboxedKernelManager

pytestmark = [pytest.mark.skipif(not sandbox.probe()[0], reason="bubblewrap cannot run here"),
              pytest.mark.xdist_group("zygote")]  # one zygote for the module, on one worker


PROBE = r"""
import json, os, socket

def zygote_reached():  # the grader's zygote socket, by its exact host path: a kernel from it outside the box?
    try:
        with socket.socket(socket.AF_UNIX) as conn:
            conn.connect(ZYGOTE_SOCKET)
        return "connected"
    except OSError as exc:
        return type(exc).__name__
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
print(json.dumps({
    "uid": os.getuid(), "pid": os.getpid(), "cwd": os.getcwd(),
    "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
    "cap_eff": status["CapEff"].strip(), "cap_prm": status["CapPrm"].strip(),
    "no_new_privs": status["NoNewPrivs"].strip(),
    "env": sorted(os.environ), "fds": fds, "tmp": sorted(os.listdir("/tmp")), "run": sorted(os.listdir("/run")),
    "inbox_file": open("data.txt").read(), "hostname": os.uname().nodename, "zygote": zygote_reached(),
}))
"""


async def _run(km: SandboxedKernelManager, code: str) -> str:
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=60)
        out: list[str] = []

        def hook(msg):
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                out.append("\n".join(msg["content"]["traceback"]))

        await kc.execute_interactive(code, output_hook=hook, timeout=60)
        return "".join(out)
    finally:
        kc.stop_channels()


@pytest.fixture(scope="module")
def zygote_socket(tmp_path_factory):
    work = tmp_path_factory.mktemp("zygote")
    os.chmod(work, 0o700)
    proc = warm.start(work / "z.sock", ["numpy"], sandbox.clean_env(1), work / "z.log")
    assert warm.ready(proc), (work / "z.log").read_text()
    yield work / "z.sock"
    proc.kill()
    proc.wait()


def _manager(sock: Path, tmp_path: Path) -> tuple[SandboxedKernelManager, Path]:
    folder = tmp_path / "submission"
    folder.mkdir(parents=True)
    (folder / "data.txt").write_text("from the inbox")
    km = SandboxedKernelManager(zygote=str(sock), scratch_dir=str(tmp_path), threads=1, disk_mb=64,
                                course_root=str(tmp_path))
    return km, folder


def test_warm_kernel_is_confined_like_a_cold_one(zygote_socket, tmp_path):
    km, folder = _manager(zygote_socket, tmp_path)

    async def scenario():
        await km.start_kernel(cwd=str(folder))
        try:
            probe = PROBE.replace("ZYGOTE_SOCKET", repr(str(zygote_socket)))
            return json.loads((await _run(km, probe)).strip().splitlines()[-1])
        finally:
            await km.shutdown_kernel(now=True)

    os.environ["CNNCOURSE_SECRET"] = "must-not-leak"
    try:
        seen = run(scenario)
    finally:
        os.environ.pop("CNNCOURSE_SECRET", None)
    assert km.kernel_host_pid, "the kernel did not come from the zygote"
    assert seen["uid"] == sandbox.SANDBOX_UID
    assert seen["cap_eff"] == seen["cap_prm"] == "0000000000000000", seen
    assert seen["no_new_privs"] == "1"
    assert len(seen["pids"]) <= 4 and seen["pid"] in seen["pids"], seen["pids"]  # PID 1 (placeholder), kernel
    assert seen["cwd"] == sandbox.WORKDIR and seen["inbox_file"] == "from the inbox"
    assert "CNNCOURSE_SECRET" not in seen["env"] and "CNNCOURSE_DB" not in seen["env"]
    assert seen["hostname"] == "sandbox"
    assert not any(name.endswith(".sock") for name in seen["tmp"] + seen["run"]), "the zygote's socket is visible"
    assert seen["zygote"] == "FileNotFoundError", "the kernel reached the zygote's socket by its path"
    assert not (set(range(3)) - set(seen["fds"]))


async def _wait(check, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not await check() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return await check()


def test_kernel_and_sandbox_end_together(zygote_socket, tmp_path):
    km, folder = _manager(zygote_socket, tmp_path)
    km2, folder2 = _manager(zygote_socket, tmp_path / "second")

    async def scenario():
        await km.start_kernel(cwd=str(folder))
        try:
            assert await km.is_alive()
            # the kernel dies (os._exit, the memory cap, a crash): the manager sees it at once, as nbclient must
            os.kill(km.kernel_host_pid, signal.SIGKILL)
            assert await _wait(lambda: _negate(km.is_alive())), "the manager did not notice its warm kernel died"
        finally:
            await km.shutdown_kernel(now=True)
        # and the other way round: killing the sandbox takes the kernel along
        await km2.start_kernel(cwd=str(folder2))
        kernel = km2.kernel_host_pid
        procs.kill_tree(km2.provisioner.process.pid)
        assert await _wait(lambda: _negate(_async_alive(kernel))), "the kernel outlived its sandbox"
        await km2.shutdown_kernel(now=True)

    run(scenario)


async def _negate(coro) -> bool:
    return not await coro


async def _async_alive(pid: int) -> bool:
    return procs.running(pid)


def test_no_signal_from_inside_ends_the_sandbox(zygote_socket, tmp_path):
    """A kernel that kills every process it can see (PID 1 included) and its parent group survives, as a cold
    one does: its parent is the sandbox's PID 1, which ignores signals from inside."""
    km, folder = _manager(zygote_socket, tmp_path)
    code = ("import os, signal\nfor p in [int(p) for p in os.listdir('/proc') if p.isdigit()]:\n"
            "    if p != os.getpid():\n        try: os.kill(p, signal.SIGKILL)\n        except OSError: pass\n"
            "print('ppid', os.getppid())\ntry:\n    os.kill(os.getppid(), signal.SIGKILL)\n"
            "    os.kill(-1, signal.SIGKILL)\nexcept OSError: pass\n")

    async def scenario():
        await km.start_kernel(cwd=str(folder))
        try:
            return await _run(km, code), await _run(km, "print('still here')")
        finally:
            await km.shutdown_kernel(now=True)

    killed, after = run(scenario)
    assert "ppid 1" in killed
    assert "still here" in after


def test_modules_of_reads_only_the_instructors_cells(tmp_path):
    """A student's own cell (or answer) must not make the zygote, shared by the next students, import anything."""
    import nbformat

    locked = {"nbgrader": {"locked": True, "grade_id": "setup"}}
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import numpy as np\nfrom cnncourse.testcells import hidden\n%matplotlib inline",
                                          metadata=locked),
                nbformat.v4.new_code_cell("import torch", metadata={"nbgrader": {"solution": True}}),
                nbformat.v4.new_code_cell("import antigravity")]  # a cell the student added
    nbformat.write(nb, tmp_path / "a.ipynb")
    expected = ["numpy", "cnncourse.testcells", "cnncourse.testcells.hidden"]
    assert warm.modules_of([tmp_path / "a.ipynb"]) == expected
    assert warm.modules_of([nb]) == expected


def test_one_shared_zygote_per_process_and_module_set():
    env = sandbox.clean_env(1)
    first = warm.shared(["math"], env)
    assert first and warm.shared(["math"], env) == first
    assert warm.shared(["math", "json"], env) not in ("", first)


def test_a_warm_kernel_formats_a_failing_cells_traceback_once(capsys):
    """The cell's output keeps IPython's whole traceback; only %notebook's stored copy (never written by a grading
    kernel) is left unformatted. The hook is IPython's private method: an IPython that renames it fails here."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    assert callable(getattr(InteractiveShell, "_format_exception_for_storage", None))
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    config.InteractiveShell.colors = "nocolor"
    shell = InteractiveShell(config=config)
    tracebacks.format_tracebacks_once(shell)
    shell.run_cell("def f():\n    raise NotImplementedError('stub')", store_history=True)
    result = shell.run_cell("assert f() == 1", store_history=True)
    assert isinstance(result.error_in_exec, NotImplementedError)
    shown = capsys.readouterr().out
    assert "NotImplementedError" in shown and "f()" in shown and "raise NotImplementedError('stub')" in shown
    stored = shell.history_manager.exceptions[result.execution_count]
    assert stored == {"ename": "NotImplementedError", "evalue": "stub", "traceback": []}


def test_a_warm_kernels_traceback_equals_a_cold_kernels(zygote_socket, tmp_path):
    """The zygote's cheaper tracebacks (``tracebacks.install``) change nothing a student reads."""
    code = ("import numpy as np\n\ndef conv_out(n, k):\n    raise NotImplementedError('write conv_out')\n\n"
            "def check():\n    assert conv_out(7, 3) == 5\n\ntry:\n    np.zeros(2) @ np.zeros(3)\nexcept ValueError:\n"
            "    pass\ncheck()\n")
    shown = {}
    for kind, sock in (("warm", str(zygote_socket)), ("cold", "")):
        km, folder = _manager(Path(sock) if sock else zygote_socket, tmp_path / kind)
        km.zygote = sock

        async def scenario(km=km, folder=folder):
            await km.start_kernel(cwd=str(folder))
            try:
                return await _run(km, code)
            finally:
                await km.shutdown_kernel(now=True)

        shown[kind] = run(scenario)
        assert bool(km.kernel_host_pid) == (kind == "warm")
    plain = re.sub(r"\x1b\[[0-9;]*m", "", shown["warm"])
    assert "NotImplementedError: write conv_out" in plain and "assert conv_out(7, 3) == 5" in plain, plain
    assert shown["warm"] == shown["cold"]


def test_prestart_only_for_warm_sandboxed_kernels(tmp_path):
    from cnncourse.grader.limits import Limits

    assert warm.prestart(tmp_path, Limits(), 2) is None, "no source notebooks"
    nbformat = pytest.importorskip("nbformat")
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import math", metadata={"nbgrader": {"locked": True, "grade_id": "setup"}})]), tmp_path / "a.ipynb")
    assert warm.prestart(tmp_path, Limits(warm_kernels=False), 2) is None
    assert warm.prestart(tmp_path, Limits(sandbox=False), 2) is None
    zyg = warm.prestart(tmp_path, Limits(threads=0), 2)
    try:
        assert zyg.socket() and Path(zyg.socket()).exists()
    finally:
        zyg.close()
        zyg.close()  # twice: no error
    assert not zyg.folder.exists() and zyg.proc.returncode is not None
    assert Limits(threads=0).kernel_threads(2) == max(1, (os.cpu_count() or 1) // 2)
    assert Limits(threads=3).kernel_threads(2) == 3


def test_a_zygote_whose_grader_was_killed_ends_and_removes_its_folder(tmp_path):
    """``cnncourse grade`` starts its zygote before anything else; killed (SIGKILL, no clean-up), it leaves
    neither the zygote nor its folder behind."""
    import subprocess
    import sys

    grader = subprocess.Popen([sys.executable, "-c", (
        "import time\nfrom cnncourse.grader import sandbox, warm\n"
        "z = warm.Zygote(['math'], sandbox.clean_env(1))\nassert z.socket()\n"
        "print(z.folder, z.proc.pid, flush=True)\ntime.sleep(120)\n")], stdout=subprocess.PIPE, text=True)
    try:
        folder, pid = grader.stdout.readline().split()
        assert Path(folder).is_dir() and procs.running(int(pid))
    finally:
        grader.kill()
        grader.wait()
    deadline = time.monotonic() + 20
    while (Path(folder).exists() or procs.running(int(pid))) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not procs.running(int(pid)), "the zygote outlived its grader"
    assert not Path(folder).exists(), "the zygote's folder was left behind"
