"""The notebook execution path: the sliced channel survives missed wake-ups, and it is the one in use."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from queue import Empty
from types import SimpleNamespace

import nbformat
import pytest
from jupyter_client.channels import AsyncZMQSocketChannel
from nbformat.v4 import new_code_cell, new_notebook

from tempo_lab.plumbing import execution
from tempo_lab.plumbing.execution import SlicedChannel, SlicedKernelClient, SlicedKernelManager
from tests.helpers import HANG_S


def _run(coroutine):
    """Run a coroutine on a thread of its own (other tests may leave an event loop running in this one)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _channel() -> SlicedChannel:
    return SlicedChannel.__new__(SlicedChannel)  # no socket: the parent's get_msg is replaced below


def test_get_msg_keeps_waiting_through_missed_wakeups(monkeypatch):
    """The parent's poll returns empty-handed twice although the message is there (the missed wake-up);
    the sliced channel asks again and gets it, with no timeout given."""
    answers = [Empty, Empty, {"msg_id": "reply"}]
    timeouts = []

    async def parent_get_msg(self, timeout=None):
        timeouts.append(timeout)
        answer = answers.pop(0)
        if answer is Empty:
            raise Empty
        return answer

    monkeypatch.setattr(AsyncZMQSocketChannel, "get_msg", parent_get_msg)
    assert _run(_channel().get_msg(timeout=None)) == {"msg_id": "reply"}
    assert timeouts == [execution.SLICE_SECONDS] * 3  # every wait is one slice, never unbounded


def test_get_msg_still_times_out(monkeypatch):
    """Without a message, ``get_msg(timeout=1.0)`` polls in slices until 1.0 s have passed on the module's
    clock, then raises ``Empty``. The clock is a fake that each poll advances by the slice it was given, so
    the test counts slices instead of timing them (a busy CPU cannot change the verdict)."""
    now = [0.0]
    slices = []

    async def never(self, timeout=None):
        slices.append(timeout)
        now[0] += timeout
        raise Empty

    monkeypatch.setattr(execution, "SLICE_SECONDS", 0.25)
    monkeypatch.setattr(execution, "time", SimpleNamespace(monotonic=lambda: now[0]))
    monkeypatch.setattr(AsyncZMQSocketChannel, "get_msg", never)
    with pytest.raises(Empty):
        _run(_channel().get_msg(timeout=1.0))
    assert slices == [0.25] * 4 and now[0] == 1.0  # waited the whole timeout, one slice at a time, no longer


def test_kernel_manager_makes_sliced_clients():
    client = SlicedKernelManager(kernel_name="python3").client()
    assert isinstance(client, SlicedKernelClient)
    assert client.shell_channel_class is SlicedChannel and client.iopub_channel_class is SlicedChannel


@pytest.mark.notebooks
def test_execute_waits_on_the_sliced_channel(tmp_path, monkeypatch):
    """A real notebook run through :func:`execution.execute` (what ``tempo-lab run`` and the tests use)
    receives its replies through :class:`SlicedChannel`."""
    seen = []
    original = SlicedChannel.get_msg

    async def counting(self, timeout=None):
        seen.append(type(self))
        return await original(self, timeout)

    monkeypatch.setattr(SlicedChannel, "get_msg", counting)
    nb = new_notebook(cells=[new_code_cell("print(6 * 7)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    source = tmp_path / "one.ipynb"
    nbformat.write(nb, str(source))
    done = execution.execute(source, tmp_path / "out.ipynb", {}, progress=False, cell_timeout=int(HANG_S))
    assert done.cells[0].outputs[0]["text"] == "42\n"
    assert seen and set(seen) == {SlicedChannel}
