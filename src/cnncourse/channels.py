"""Kernel-client channels that never wait for a message already sitting on their socket.

An asyncio ZMQ socket wakes its reader through the socket's notification file descriptor, which ZMQ signals
on an edge, not a level. Under CPU load the edge can be consumed without the waiting poll being woken
(measured: nbclient running 30 cells that draw into an ``ipywidgets.Output``, as the lectures' explorers do,
with two busy processes on this 2-core machine hung in 8 of 8 runs; the ``execute_reply`` it waited for was
on the shell socket the whole time). ``ReliableChannel.get_msg`` asks the socket itself (``ZMQ_EVENTS``) before
every short poll, so a missed wake-up costs at most ``SLICE_S`` instead of the whole run.

``ReliableKernelManager`` (for papermill and nbclient: ``kernel_manager_class=``) and ``ReliableKernelClient``
(the grader's kernel client builds on it) use these channels for shell, IOPub, stdin and control.
"""
from __future__ import annotations

import time
from queue import Empty
from typing import Any

import zmq
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.manager import AsyncKernelManager
from traitlets import DottedObjectName, Type

SLICE_S = 0.1  # longest wait between two looks at the socket's own state


class ReliableChannel(AsyncZMQSocketChannel):
    """``AsyncZMQSocketChannel`` whose ``get_msg`` returns a message waiting on the socket even when the
    socket's file descriptor never wakes the event loop for it."""

    async def get_msg(self, timeout: float | None = None) -> dict[str, Any]:
        """The next message; ``queue.Empty`` after ``timeout`` seconds (None: wait as long as it takes)."""
        assert self.socket is not None
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self.socket.get(zmq.EVENTS) & zmq.POLLIN:
                return await self._recv()
            left = SLICE_S if deadline is None else min(SLICE_S, deadline - time.monotonic())
            if left <= 0:
                raise Empty
            if await self.socket.poll(max(1, int(left * 1000))):
                return await self._recv()


class ReliableKernelClient(AsyncKernelClient):
    """``AsyncKernelClient`` on ``ReliableChannel``s (the heartbeat channel is unchanged: it has a thread)."""

    shell_channel_class = Type(ReliableChannel)
    iopub_channel_class = Type(ReliableChannel)
    stdin_channel_class = Type(ReliableChannel)
    control_channel_class = Type(ReliableChannel)


class ReliableKernelManager(AsyncKernelManager):
    """``AsyncKernelManager`` whose clients are ``ReliableKernelClient``s (jupyter_client's async manager
    takes its ``client_factory``, not its ``client_class``, so both are set)."""

    client_class = DottedObjectName("cnncourse.channels.ReliableKernelClient")
    client_factory = Type(ReliableKernelClient)
