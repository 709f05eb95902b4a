"""The sandbox itself, with a kernel started the way the grader starts it: what the kernel can see and do,
and what the sandbox costs."""
from __future__ import annotations

import asyncio
import concurrent.futures
import json
import statistics
import time

import pytest

from cnncourse.grader import sandbox
from cnncourse.grader.kernel import SandboxedKernelManager

needs_sandbox = pytest.mark.skipif(not sandbox.probe()[0], reason=f"no sandbox here: {sandbox.probe()[1]}")

PROBE = """\
import json, os, socket
seen = {"uid": os.getuid(), "gid": os.getgid(), "cwd": os.getcwd(), "files": sorted(os.listdir(".")),
        "env": sorted(k for k in os.environ if "CNNCOURSE" in k or "SECRET" in k),
        "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()), "course": os.path.exists(COURSE),
        "root_entries": sorted(os.listdir("/")), "system_writable": os.access("/usr/lib", os.W_OK)}
try:
    socket.create_connection(("1.1.1.1", 53), timeout=2)
    seen["network"] = True
except OSError:
    seen["network"] = False
print(json.dumps(seen))
"""


async def run_in_kernel(code: str, folder, course_root, use_sandbox=True) -> str:
    km = SandboxedKernelManager(kernel_name="python3", sandbox=use_sandbox, course_root=str(course_root),
                                memory_mb=2048)
    await km.start_kernel(cwd=str(folder))
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=60)
        out: list[str] = []
        await kc.execute_interactive(code, timeout=60, output_hook=lambda m: out.append(
            m["content"].get("text", "")) if m["msg_type"] == "stream" else None)
        return "".join(out)
    finally:
        kc.stop_channels()
        await km.shutdown_kernel(now=True)


def _run(coro):
    """``asyncio.run`` in a thread of its own: the browser tests' session-wide Playwright may keep an event loop
    running in this xdist worker's main thread."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@needs_sandbox
def test_kernel_sees_only_its_copy_no_course_no_secrets_no_network(tmp_path, monkeypatch):
    course_root = tmp_path / "course"
    (course_root / "solutions").mkdir(parents=True)
    (course_root / "gradebook.db").write_text("grades")
    folder = tmp_path / "autograded" / "ann" / "tiny"
    folder.mkdir(parents=True)
    (folder / "tiny.ipynb").write_text("{}")  # the graded notebook (hidden tests): never copied in
    (folder / "data.csv").write_text("1,2\n")
    (folder / ".cnncourse_cases.json").write_text("{}")
    monkeypatch.setenv("CNNCOURSE_SECRET", "s3cret")
    monkeypatch.setenv("CNNCOURSE_DB", "postgresql://u:s3cret@h/db")
    out = _run(run_in_kernel(f"COURSE = {str(course_root)!r}\n" + PROBE, folder, course_root))
    seen = json.loads(out.strip().splitlines()[-1])
    assert (seen["uid"], seen["gid"]) == (sandbox.SANDBOX_UID, sandbox.SANDBOX_UID)
    assert seen["cwd"] == sandbox.WORKDIR and seen["files"] == [".cnncourse_cases.json", "data.csv"]
    assert seen["env"] == [] and seen["course"] is False and seen["network"] is False
    assert max(seen["pids"]) < 10  # its own PID namespace: the grader's processes are not there
    assert seen["system_writable"] is False
    system = {"bin", "dev", "etc", "lib", "lib32", "lib64", "proc", "run", "sbin", "tmp", "usr"}
    python = {p.split("/")[1] for p in sandbox.python_paths(course_root)}  # mount points of the venv etc.
    assert set(seen["root_entries"]) <= system | python, seen["root_entries"]


@needs_sandbox
def test_sandbox_costs_well_under_a_second_per_kernel(tmp_path):
    folder = tmp_path / "nb"
    folder.mkdir()

    def start_time(use_sandbox: bool) -> float:
        t0 = time.perf_counter()
        _run(run_in_kernel("print(1)", folder, tmp_path, use_sandbox))
        return time.perf_counter() - t0

    plain = [start_time(False) for _ in range(3)]
    boxed = [start_time(True) for _ in range(3)]
    cost = statistics.median(boxed) - statistics.median(plain)
    print(f"kernel start+run+stop: {statistics.median(plain):.2f} s plain, {statistics.median(boxed):.2f} s "
          f"sandboxed: the sandbox costs {cost:.3f} s per kernel")
    assert cost < 0.5


def test_grade_refuses_without_a_sandbox_unless_told(tmp_path, monkeypatch):
    from helpers import ANSWERS_OK, answered, make_course, run_cli, scores, submit

    from cnncourse import course
    from cnncourse.grader.scheduler import grade

    root, released = make_course(tmp_path)
    submit(root, "ann", answered(released, ANSWERS_OK))
    monkeypatch.setattr(sandbox, "probe", lambda: (False, "no user namespaces here"))
    with pytest.raises(course.CourseError, match="cannot sandbox the students' kernels: no user namespaces here"):
        grade(root, "tiny", progress=False)
    proc = run_cli(root, "grade", "tiny", "--no-sandbox", "--no-progress")
    assert proc.returncode == 0 and "WARNING: --no-sandbox" in proc.stderr, proc.stdout + proc.stderr
    assert scores(root) == {"ann": (6.0, 6.0)}
