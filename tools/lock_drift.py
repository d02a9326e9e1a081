"""Which installed packages differ from the lock: run by ``make drift`` in a venv of the newest versions.

    python tools/lock_drift.py requirements/lock.txt requirements/models.txt

The pins are every ``name==version`` line of the files given (the lock, and the bundled models' packages).
Prints one line per package whose installed version is not the locked one (``moved``), per package installed
but not in the lock (``new``) and per locked package not installed (``gone``), then a count. CI's output then
names the package and version behind any failure of the tests that follow. Exit status 0 always: the tests
decide.
"""

from __future__ import annotations

import re
import sys
from importlib.metadata import distributions
from pathlib import Path

# installed by the Makefile beside the pinned files (the CPU build of torch), or the project itself
OUTSIDE_LOCK = {"torch", "tempo-lab"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(path: Path) -> dict[str, str]:
    """``name -> version`` of every ``name==version`` line of a pip-compile lock."""
    pins = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", line)
        if match:
            pins[canonical(match.group(1))] = match.group(2)
    return pins


def main(*files: str) -> int:
    pins = {name: version for path in files for name, version in locked(Path(path)).items()}
    installed = {canonical(d.metadata["Name"]): d.version for d in distributions()}
    lines = []
    for name in sorted(set(pins) | set(installed)):
        if name in OUTSIDE_LOCK:
            continue
        have, want = installed.get(name), pins.get(name)
        if want is None:
            lines.append(f"new    {name} {have} (not in the lock)")
        elif have is None:
            lines.append(f"gone   {name} (locked {want}, no longer installed)")
        elif have != want:
            lines.append(f"moved  {name} {want} (lock) -> {have} (newest)")
    print(f"drift against {', '.join(files)}: {len(lines)} package(s) differ")
    for line in lines:
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*(sys.argv[1:] or ["requirements/lock.txt", "requirements/models.txt"])))
