"""Shared, session-scoped model fixtures, and the ``--device`` option.

``pytest --device cuda`` (default ``cpu``) runs the suite with every model the tests build on that device:
``$TEMPO_LAB_DEVICE`` is set, so :func:`~tempo_lab.load_model` and :func:`~tempo_lab.tiny.tiny_random` put
their models there, and torch's default device is set, so the tensors the tests make go there too. The
exactness asserted is the same. Tests that only make sense on the CPU (the browser, the notebook kernels,
nbval, and those marked ``cpu_only``) are skipped there, saying why.

``tiny`` / ``tiny_sdpa``: the seeded 2-layer random Llama (eager / SDPA), built in milliseconds.
``tiny_gpt2``: a 2-layer GPT-2 (learned absolute positions, no rotary) built from a config, no hub access.
``bundled``: the bundled SmolLM2-135M-Instruct, loaded once per session (converted and cached on first use).
``gemma``: the bundled Gemma 3 270M, the same way.
Tests must leave these models as they found them (eval mode, same attention implementation, no hooks).

``make test`` runs the suite on two pytest-xdist workers (``-n 2 --dist loadscope``). A worker takes whole
groups (:func:`pytest_xdist_make_scheduler`): one test file or notebook each (module fixtures are built
once, nbval runs a notebook's cells in order in one kernel), and :data:`SHARED_GROUPS` puts files that share
an expensive session fixture on one worker. Each worker gets its share of the cores, for torch and for the
kernels and processes it starts.
"""

from __future__ import annotations

import os

import pytest
import torch

# Nothing in the tests may reach a model hub: fail at once instead of retrying a network that is not there.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tempo_lab import load_model  # noqa: E402
from tempo_lab.models import LoadedModel, check_device
from tempo_lab.tiny import tiny_random

CPU_ONLY_MARKERS = ("cpu_only", "browser", "notebooks")

# Files that share an expensive session fixture run on one worker: the first load of Gemma 3 converts it
# (about 100 s on an empty cache; a second worker would wait for it), and the browser suite shares one
# JupyterLab server and one Chromium. Keys are paths from the repository root, or a notebook's file name
# (nbval runs copies).
SHARED_GROUPS = {
    "tests/test_gemma.py": "gemma",
    "06_claims_at_scale.ipynb": "gemma",
    "tests/browser/": "browser",
}

if "PYTEST_XDIST_WORKER_COUNT" in os.environ:  # a worker of make test's -n: its share of the cores
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    _threads = max(1, _cores // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ["OMP_NUM_THREADS"] = str(_threads)
    torch.set_num_threads(_threads)


def worker_group(path: str) -> str:
    """The group a worker runs the tests of ``path`` (a test file or notebook, from the repository root) in:
    its :data:`SHARED_GROUPS` entry, else the file itself."""
    for key, group in SHARED_GROUPS.items():
        if path.startswith(key) or path.rpartition("/")[2] == key:
            return group
    return path


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """``--dist loadscope`` with :func:`worker_group` as the scope: xdist's scheduler for whole work units
    (largest first), through its public hook. xdist's own ``loadgroup`` cannot be used here: it renames the
    collected ids through an attribute that pytest 9 no longer reads."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FileGroups(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return worker_group(nodeid.split("::", 1)[0])

    return FileGroups(config, log)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--device", default="cpu", metavar="DEVICE",
        help="where the models the tests build live: cpu (default), cuda, cuda:N; CPU-only tests are skipped",
    )  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    device = config.getoption("--device")
    try:
        check_device(device, "--device")
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    if torch.device(device).type != "cpu":
        os.environ["TEMPO_LAB_DEVICE"] = device
        torch.set_default_device(device)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    device = config.getoption("--device")
    if torch.device(device).type == "cpu":
        return
    skip = pytest.mark.skip(reason=f"runs on the CPU only, not under --device {device}")
    for item in items:
        if item.path.suffix == ".ipynb" or any(item.get_closest_marker(m) for m in CPU_ONLY_MARKERS):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def device(pytestconfig: pytest.Config) -> torch.device:
    """The device of ``--device``: where the tests' models and tensors live."""
    return torch.device(pytestconfig.getoption("--device"))


@pytest.fixture(scope="session")
def tiny() -> LoadedModel:
    return load_model("tiny-random")


@pytest.fixture(scope="session")
def tiny_sdpa() -> LoadedModel:
    return load_model("tiny-random", attn_implementation="sdpa")


@pytest.fixture(scope="session")
def tiny_gpt2() -> LoadedModel:
    return tiny_random("gpt2")


@pytest.fixture(scope="session")
def bundled() -> LoadedModel:
    return load_model()


@pytest.fixture(scope="session")
def gemma() -> LoadedModel:
    return load_model("gemma3-270m")
