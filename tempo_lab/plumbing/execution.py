"""Executing one notebook headless with papermill, on a kernel client that cannot miss a reply.

The hang this module prevents: nbclient waits for a cell's reply with one ``socket.poll(timeout)`` on the
kernel's shell channel (and likewise for output on IOPub). On this stack (pyzmq 27, jupyter_client 8,
nbclient 0.11, ipykernel 6/7) that poll occasionally is not woken when the reply arrives, typically after a
cell that opens many widget comms: the kernel is idle, the reply sits in the socket, and the client sleeps
until the cell timeout, or forever without one (nbclient #312, papermill #711).

The fix uses only public extension points, one per layer:

- :class:`SlicedChannel`: a ``jupyter_client`` channel whose ``get_msg`` waits in one-second slices, so a
  missed wake-up costs at most a second;
- :class:`SlicedKernelClient`: an ``AsyncKernelClient`` whose shell, IOPub and stdin channels are sliced;
- :class:`SlicedKernelManager`: an ``AsyncKernelManager`` whose ``client_class`` is that client;
- :func:`execute`: ``papermill.execute_notebook(..., kernel_manager_class=SlicedKernelManager)``, which
  papermill passes on to nbclient.

Everything else (timeouts, ``error_on_timeout``, ``raise_on_iopub_timeout``, output handling) stays
nbclient's own.
"""

from __future__ import annotations

import time
from pathlib import Path
from queue import Empty
from typing import Any

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.manager import AsyncKernelManager
from traitlets import DottedObjectName, Type

KERNEL = "python3"
SLICE_SECONDS = 1.0


class SlicedChannel(AsyncZMQSocketChannel):
    """A channel whose ``get_msg(timeout)`` polls in slices of :data:`SLICE_SECONDS`.

    Same contract as the parent: returns the next message, or raises ``queue.Empty`` once ``timeout``
    seconds have passed (``None`` = wait for ever).
    """

    async def get_msg(self, timeout: float | None = None) -> dict[str, Any]:  # type: ignore[override]
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = SLICE_SECONDS if deadline is None else min(SLICE_SECONDS, deadline - time.monotonic())
            try:
                return await super().get_msg(timeout=max(0.0, left))
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise


class SlicedKernelClient(AsyncKernelClient):
    """nbclient's kernel client with :class:`SlicedChannel` for the channels it waits on."""

    shell_channel_class = Type(SlicedChannel)
    iopub_channel_class = Type(SlicedChannel)
    stdin_channel_class = Type(SlicedChannel)


class SlicedKernelManager(AsyncKernelManager):
    """A kernel manager whose clients are :class:`SlicedKernelClient`."""

    client_class = DottedObjectName("tempo_lab.plumbing.execution.SlicedKernelClient")
    client_factory = Type(SlicedKernelClient)


def execute(
    source: Path, output: Path, parameters: dict[str, Any], *, progress: bool = True, cell_timeout: int = 900
):
    """Run one notebook with papermill in a ``python3`` kernel of this environment, with the notebook's own
    folder as working directory; returns the executed notebook node (also written to ``output``). Raises
    papermill's ``PapermillExecutionError`` on a failing cell (the partial notebook is written first)."""
    import papermill

    output.parent.mkdir(parents=True, exist_ok=True)
    return papermill.execute_notebook(
        str(source),
        str(output),
        parameters=parameters or None,
        kernel_name=KERNEL,
        kernel_manager_class=SlicedKernelManager,
        cwd=str(source.parent),
        progress_bar=progress,
        log_output=False,
        execution_timeout=cell_timeout,
        store_widget_state=False,  # a view keeps its figure in its output (tempo_lab.views.panel), once
    )
