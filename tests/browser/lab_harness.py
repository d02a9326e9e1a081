"""A JupyterLab server and headless Chromium for the browser tests: start, drive, always clean up.

The server runs from this venv (``sys.executable -m jupyter lab``) on 127.0.0.1 with a random free port and a
random token, in its own process group, with HOME, Jupyter config/data/runtime dirs, IPython and matplotlib
config all in a temporary folder, so no user configuration leaks in. Lab settings switch off the news and
update checks, the extension manager and autosave, and attach every notebook cell to the DOM
(``windowingMode: none``) so that the tests can see every output. A fresh workspace folder plus ``?reset`` in
the URL means no workspace is restored.

:meth:`LabServer.stop` shuts kernels and server down through the REST API, then kills the server's process
group and every process it started (kernels run in their own sessions, so they are tracked as descendants),
and returns the processes that were still alive afterwards (none, normally).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from tests.helpers import HANG_S

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
NOTEBOOKS = REPO / "notebooks"
SCREENSHOTS = REPO / "build" / "screenshots"
SCRATCH_NOTEBOOK = "00_harness_scratch.ipynb"  # written by the lab_server fixture, next to the notebooks

CHROMIUM = Path("/usr/bin/chromium")
SKIP_REASON = "chromium not installed: apt-get install chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# JupyterLab user settings written into the temporary settings dir: {plugin path: settings}.
LAB_SETTINGS: dict[str, dict[str, Any]] = {
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/extensionmanager-extension/plugin": {"enabled": False},
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/themes": {"theme": "JupyterLab Light"},
}


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: SIGTERM this process when the test process dies, even by SIGKILL (jupyter stops its kernels)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def chromium_available() -> bool:
    return CHROMIUM.exists() and os.access(CHROMIUM, os.X_OK)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll ``condition`` until it returns something truthy (returned); TimeoutError after ``timeout`` s.

    Callers pass :data:`~tests.helpers.HANG_S` (or a shorter slice they retry within it): a timeout here
    means nothing happened at all, never that the machine was slow."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclass
class LabServer:
    """One ``jupyter lab`` process serving ``root`` (a notebook folder); all its state lives in ``home``."""

    root: Path
    home: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    token: str = ""
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    _seen: dict[int, psutil.Process] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base_url}/{path.lstrip('/')}{sep}token={self.token}"

    # ---- lifecycle -------------------------------------------------------------------------------------
    def environment(self) -> dict[str, str]:
        h = self.home
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "IPYTHON", "MPL"))}
        env.update(
            HOME=str(h),
            XDG_CONFIG_HOME=str(h / ".config"),
            XDG_CACHE_HOME=str(h / ".cache"),
            XDG_DATA_HOME=str(h / ".local/share"),
            JUPYTER_CONFIG_DIR=str(h / "jupyter_config"),
            JUPYTER_DATA_DIR=str(h / "jupyter_data"),
            JUPYTER_RUNTIME_DIR=str(h / "jupyter_runtime"),
            JUPYTER_PLATFORM_DIRS="1",
            JUPYTERLAB_SETTINGS_DIR=str(h / "lab_settings"),
            JUPYTERLAB_WORKSPACES_DIR=str(h / "lab_workspaces"),
            IPYTHONDIR=str(h / "ipython"),
            MPLCONFIGDIR=str(h / "mpl"),
            PYTHONNOUSERSITE="1",
            # The venv first; the kernel spec says "python", which jupyter_client maps to sys.executable.
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        )
        env.update(self.extra_env)
        return env

    def write_settings(self) -> None:
        for plugin, values in LAB_SETTINGS.items():
            path = self.home / "lab_settings" / f"{plugin}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values, indent=1))
        for d in ("jupyter_config", "jupyter_data", "jupyter_runtime", "lab_workspaces", "ipython", "mpl"):
            (self.home / d).mkdir(parents=True, exist_ok=True)

    def start(self, timeout: float = HANG_S) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.write_settings()
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.log_path = self.home / "jupyter_lab.log"
        cmd = [
            sys.executable, "-m", "jupyter", "lab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            "--ServerApp.allow_remote_access=False",
            "--ServerApp.shutdown_no_activity_timeout=1800",  # a server orphaned by a crash ends by itself
            f"--LabApp.user_settings_dir={self.home / 'lab_settings'}",
            f"--LabApp.workspaces_dir={self.home / 'lab_workspaces'}",
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.expose_app_in_browser=True",
            "--LanguageServerManager.autodetect=False",
            "--LabApp.extension_manager=readonly",
            "--MappingKernelManager.default_kernel_name=python3",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI containers run as root
            cmd.append("--allow-root")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=self.root, env=self.environment(), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        self._remember_descendants()

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                return self.api("GET", "api/status") is not None
            except OSError:
                return False

        try:
            wait_until(ready, timeout, f"jupyter lab on port {self.port}")
        except TimeoutError as e:
            raise TimeoutError(f"{e}\n{self.log_tail()}") from None

    def log_tail(self, n: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    # ---- REST API ----------------------------------------------------------------------------------------
    def api(self, method: str, path: str, body: Any = None, timeout: float = HANG_S) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.base_url}/{path.lstrip('/')}", data=data, method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else {}

    def sessions(self) -> list[dict[str, Any]]:
        return self.api("GET", "api/sessions")

    def kernels(self) -> list[dict[str, Any]]:
        return self.api("GET", "api/kernels")

    def shutdown_kernels(self) -> None:
        """Delete every session and kernel (frees the model memory between notebooks)."""
        for s in self.sessions():
            self.api("DELETE", f"api/sessions/{s['id']}")
        for k in self.kernels():
            self.api("DELETE", f"api/kernels/{k['id']}")

    # ---- processes --------------------------------------------------------------------------------------
    def _remember_descendants(self) -> list[psutil.Process]:
        """All live descendants of the server (kernels included); remembered so that stop() can reap them."""
        if self.proc is None:
            return []
        try:
            root = psutil.Process(self.proc.pid)
            found = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            found = []
        for p in found:
            self._seen.setdefault(p.pid, p)
        return found

    def kernel_processes(self) -> list[psutil.Process]:
        """Live kernel processes started by this server."""
        out = []
        for p in self._remember_descendants():
            try:
                if "ipykernel_launcher" in " ".join(p.cmdline()):
                    out.append(p)
            except psutil.NoSuchProcess:
                pass
        return out

    def stop(self) -> list[str]:
        """Shut everything down; return a description of each process still alive afterwards (normally [])."""
        if self.proc is None:
            return []
        self._remember_descendants()
        if self.proc.poll() is None:
            try:
                self.shutdown_kernels()
                self.api("POST", "api/shutdown")
            except (OSError, ValueError):
                pass
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        # the graces only decide when to escalate; what is alive after SIGKILL and its grace is reported
        for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 60)):
            alive = self._alive()
            if not alive and self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
            for p in alive:
                try:
                    p.send_signal(sig)
                except psutil.NoSuchProcess:
                    pass
            psutil.wait_procs(alive, timeout=grace)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        left = [f"pid {p.pid}: {' '.join(p.cmdline())}" for p in self._alive()]
        if self.proc.poll() is None:
            left.append(f"server pid {self.proc.pid}")
        return left

    def _alive(self) -> list[psutil.Process]:
        alive = []
        for p in self._seen.values():
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(p)
            except psutil.NoSuchProcess:
                pass
        return alive


def copy_notebooks(src: Path, dst: Path) -> Path:
    """Copy the notebooks folder (without checkpoints) to ``dst``; returns ``dst``."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    return dst
