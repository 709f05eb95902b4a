"""`cnncourse lab` (what `make lab` runs) serves the course: started as the user is (root in most containers,
no display), it prints one line with the address, that address opens JupyterLab, start-up shows no warning
from our own configuration, and stopping it stops the server."""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 150  # JupyterLab's first start on a loaded 2-core machine
URL_LINE = re.compile(r"open (http://\S+/lab\?token=\w+)")

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def course_copy(tmp_path) -> Path:
    """The parts of the course JupyterLab shows, in a scratch folder (nothing is written into the repo)."""
    course = tmp_path / "course"
    course.mkdir()
    shutil.copy2(ROOT / "nbgrader_config.py", course / "nbgrader_config.py")
    for part in ("lectures", "assignments", "solutions"):
        shutil.copytree(ROOT / part, course / part, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    return course


def test_lab_serves_the_course_and_stops(course_copy, tmp_path):
    port = _free_port()
    env = dict(os.environ)
    env.pop("DISPLAY", None)  # a headless machine: no browser may be opened
    env.pop("WAYLAND_DISPLAY", None)
    env.pop("JUPYTER_TOKEN", None)
    env.update({"JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter_config"),  # not the user's ~/.jupyter
                "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
                "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
                "BROWSER": "false"})  # if a browser were opened anyway, nothing would appear
    cnncourse = Path(sys.executable).parent / "cnncourse"
    cmd = [str(cnncourse), "--root", str(course_copy), "lab", "--port", str(port)]
    proc = subprocess.Popen(cmd, cwd=course_copy, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not any(URL_LINE.search(line) for line in lines):
            assert proc.poll() is None, f"`cnncourse lab` exited with {proc.returncode}:\n{''.join(lines)}"
            assert time.monotonic() < deadline, f"no address printed within {START_TIMEOUT_S} s:\n{''.join(lines)}"
            time.sleep(0.5)
        output = "".join(lines)
        urls = URL_LINE.findall(output)
        assert len(urls) == 1, f"expected one line with the address, got {urls}"
        assert f":{port}/" in urls[0], f"asked for port {port}, printed {urls[0]}"
        with urllib.request.urlopen(urls[0], timeout=30) as resp:
            page = resp.read().decode()
        assert resp.status == 200 and "<title>JupyterLab</title>" in page, page[:500]
        with urllib.request.urlopen(urls[0].replace("/lab?", "/api/contents/lectures?"), timeout=30) as resp:
            listed = resp.read().decode()
        lecture = next((ROOT / "lectures").glob("*.ipynb"))
        assert lecture.name in listed, f"the lab does not serve the course's lectures/: {listed[:300]}"
        if os.geteuid() == 0:
            assert "--allow-root" in output, f"running as root must be said:\n{output}"
        assert "Running as root is not recommended" not in output, output
        assert "no browser opened" in output, output
        config_warnings = [line for line in output.splitlines()
                           if "not recognized" in line or "nbgrader_config" in line or "[W " in line]
        assert not config_warnings, "start-up warnings:\n" + "\n".join(config_warnings)
        proc.send_signal(signal.SIGTERM)  # what `kill` or a container stop does
        proc.wait(timeout=30)
        deadline = time.monotonic() + 15
        while _port_open(port) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not _port_open(port), "JupyterLab still serves after `cnncourse lab` was stopped"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        else:  # the server runs in our session too: make sure nothing of it is left
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
