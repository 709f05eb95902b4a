"""cnncourse.channels: kernel-client channels that return a message waiting on their socket even when the
socket's file descriptor never wakes the event loop (the hang of headless lecture runs under load)."""
from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from queue import Empty

import nbformat
import pytest
import zmq
import zmq.asyncio
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.session import Session

from cnncourse.channels import SLICE_S, ReliableChannel, ReliableKernelClient, ReliableKernelManager

sys.path.insert(0, str(Path(__file__).resolve().parent / "grader"))
from helpers import run_in_thread  # noqa: E402  (tests/grader/helpers.py)


async def _deaf_pair():
    """A connected PAIR of asyncio sockets whose receiving side's ``poll`` never fires: the lost wake-up."""
    context = zmq.asyncio.Context()
    sender, receiver = context.socket(zmq.PAIR), context.socket(zmq.PAIR)
    sender.bind("inproc://channels-test")
    receiver.connect("inproc://channels-test")

    async def deaf_poll(timeout=None, flags=zmq.POLLIN):
        await asyncio.sleep((timeout or 1000) / 1000)
        return 0

    receiver.poll = deaf_poll
    return context, sender, receiver


def test_a_waiting_message_is_returned_although_the_poll_never_fires():
    async def scenario():
        context, sender, receiver = await _deaf_pair()
        session = Session()
        try:
            session.send(sender, session.msg("execute_reply", content={"status": "ok"}))
            await asyncio.sleep(0.05)
            with pytest.raises(Empty):  # jupyter_client's own channel waits on the poll alone
                await AsyncZMQSocketChannel(receiver, session).get_msg(timeout=0.3)
            began = time.monotonic()
            msg = await ReliableChannel(receiver, session).get_msg(timeout=None)
            return msg, time.monotonic() - began
        finally:
            context.destroy(linger=0)

    msg, waited = run_in_thread(scenario)
    assert msg["msg_type"] == "execute_reply" and msg["content"] == {"status": "ok"}
    assert waited < 2 * SLICE_S, f"took {waited:.2f} s"


def test_no_message_means_empty_after_the_timeout_not_before():
    async def scenario():
        context, _, receiver = await _deaf_pair()
        try:
            began = time.monotonic()
            with pytest.raises(Empty):
                await ReliableChannel(receiver, Session()).get_msg(timeout=0.35)
            return time.monotonic() - began
        finally:
            context.destroy(linger=0)

    waited = run_in_thread(scenario)
    assert 0.3 <= waited < 0.35 + 2 * SLICE_S, f"waited {waited:.2f} s"


def test_the_manager_and_the_graders_client_use_the_reliable_channels():
    from cnncourse.grader.kernel import ReadyClient

    km = ReliableKernelManager(kernel_name="python3")
    assert km.client_factory is ReliableKernelClient
    client = km.client()
    assert all(isinstance(ch, ReliableChannel) for ch in (client.shell_channel, client.iopub_channel,
                                                          client.stdin_channel, client.control_channel))
    client.stop_channels()
    assert issubclass(ReadyClient, ReliableKernelClient)


EXPLORERS = """\
import sys, nbformat
from nbclient import NotebookClient
from cnncourse.channels import ReliableKernelManager
nb = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(nb, kernel_name="python3", kernel_manager_class=ReliableKernelManager).execute()
print("executed", sum(len(c.outputs) for c in nb.cells if c.cell_type == "code"))
"""


@pytest.mark.slow
def test_explorer_cells_finish_under_cpu_load(tmp_path):
    """30 cells of a lecture explorer (an ipywidgets.Output drawn into with clear_output + display) while two
    busy processes hold both cores: with jupyter_client's channels nbclient hung here in 8 of 8 runs."""
    cells = [nbformat.v4.new_code_cell("import numpy as np\nfrom cnncourse.widgets import padding_explorer\n"
                                       "img = np.random.default_rng(0).random((12, 12))")]
    cells += [nbformat.v4.new_code_cell('padding_explorer(img, pad=3, mode="reflect")') for _ in range(30)]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "explorers.ipynb")
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        run = subprocess.run([sys.executable, "-c", EXPLORERS, str(tmp_path / "explorers.ipynb")], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    assert run.returncode == 0, run.stderr[-3000:]
    assert "executed" in run.stdout and int(run.stdout.split()[-1]) >= 30, run.stdout
