"""Fixtures for the browser tests: a real JupyterLab on a temporary copy of the course, driven by Chromium.

The tests need Debian's ``chromium`` (``apt-get install chromium``; Playwright's own browser download is
not used) and the ``playwright`` Python package (in the ``dev`` extra). Without them every browser test is
skipped with a message that says how to enable it. Point ``CNNCOURSE_CHROMIUM`` at another Chromium/Chrome
binary to use that one instead.

``lab`` starts ``jupyter lab`` from this interpreter's environment on a free localhost port with a random
token, in a temporary copy of ``lectures/``, ``assignments/``, ``solutions/`` and ``nbgrader_config.py``
(so nothing is written into the repository), and always stops it (and its kernels) afterwards.
Screenshots go to ``reports/browser/`` (git-ignored).
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from jlab import CHROMIUM_ARGS, ENABLE_HINT, ROOT, SCREENSHOTS, chromium_path, screenshot

COURSE_PARTS = ("lectures", "assignments", "solutions", "nbgrader_config.py")
LAB_START_TIMEOUT = 90  # seconds; a shared 2-core machine can be slow to start JupyterLab


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the xdist_group marks (--dist loadgroup)
def pytest_collection_modifyitems(config, items):
    """Every test in tests/browser/ is a browser test: mark it, keep it on one xdist worker (one JupyterLab),
    and skip it, saying how to enable it, when Chromium or Playwright is missing."""
    here = Path(__file__).resolve().parent
    reason = None
    if chromium_path() is None:
        reason = f"Chromium not found; {ENABLE_HINT}"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = f"playwright is not installed; {ENABLE_HINT}"
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.xdist_group("browser"))
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Lab:
    """A running JupyterLab: ``url(path)`` gives an authenticated address, ``root`` the course copy."""
    base: str
    token: str
    root: Path
    log: Path

    def url(self, path: str = "lab") -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base}/{path.lstrip('/')}{sep}token={self.token}"

    def api(self, path: str) -> object:
        req = urllib.request.Request(f"{self.base}/{path.lstrip('/')}",
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


def _stop(proc: subprocess.Popen) -> None:
    """Stop JupyterLab and everything it started (kernels), politely first."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):  # kernels left behind, or a server that ignored SIGTERM
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


@pytest.fixture(scope="session")
def lab(tmp_path_factory) -> Lab:
    """JupyterLab on a temporary copy of the course; always shut down at the end of the session."""
    tmp = tmp_path_factory.mktemp("lab")
    course = tmp / "course"
    course.mkdir()
    for part in COURSE_PARTS:
        src = ROOT / part
        if src.is_dir():
            shutil.copytree(src, course / part, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        elif src.is_file():
            shutil.copy2(src, course / part)
    # Private Jupyter state (settings, workspaces, runtime files, nbgrader exchange) so the test neither
    # reads nor writes the user's ~/.jupyter; the venv's extensions still load from sys.prefix.
    config_dir = tmp / "jupyter_config"
    config_dir.mkdir()
    exchange = tmp / "exchange"
    exchange.mkdir()
    exchange.chmod(0o777)  # nbgrader's exchange is shared by all users: it warns unless it is world-writable
    (config_dir / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.Exchange.root = {str(exchange)!r}\n")
    # No news feed or update check: nothing to fetch offline, and no "receive news?" toast over the page.
    (config_dir / "jupyter_server_config.py").write_text(
        "c = get_config()\nc.LabApp.news_url = None\n"
        "c.LabApp.check_for_updates_class = 'jupyterlab.NeverCheckForUpdate'\n")
    settings = tmp / "lab_settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false", "checkForUpdates": false}')
    for stale in SCREENSHOTS.glob("FAILED-*.png"):  # leftovers of an earlier failing run
        stale.unlink()
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # the test suite sets Agg; kernels in the lab must show figures inline
    env.update({
        "PATH": str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""),  # alembic for nbgrader
        "JUPYTER_CONFIG_DIR": str(config_dir),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp / "lab_settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "lab_workspaces"),
        "PYTHONWARNINGS": "ignore",
    })
    jupyter = Path(sys.executable).parent / "jupyter"
    cmd = [str(jupyter) if jupyter.exists() else sys.executable, *([] if jupyter.exists() else ["-m", "jupyter"]),
           "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={course}",
           *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])]
    log = tmp / "jupyterlab.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=course, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    server = Lab(base=f"http://127.0.0.1:{port}", token=token, root=course, log=log)
    try:
        deadline = time.monotonic() + LAB_START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with code {proc.returncode} while starting:\n{server.log_tail()}")
            try:
                server.api("api/status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer within {LAB_START_TIMEOUT} s:\n{server.log_tail()}")
                time.sleep(0.5)
        yield server
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium (the system's; Playwright's download is never used)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, lab, request):
    """A fresh browser tab 1400x900; on failure a screenshot `FAILED-<test>.png` is saved for debugging."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, device_scale_factor=1)
    context.set_default_timeout(30_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.page_errors = errors
    try:
        yield tab
    finally:
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            with contextlib.suppress(Exception):
                screenshot(tab, f"FAILED-{request.node.name}")
        context.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep

