"""A results folder that cannot lie: a manifest, verified part files, a quarantine and one writer at a time.

Both kinds of long run write here: a study over hundreds of prompts (:mod:`tempo_lab.studies`, a part per
measurement and chunk of prompts) and the TPI training runs (:mod:`tempo_lab.tpi.runs`, a part per trained
model). Layout::

    folder/manifest.json                what was run: the identity every part must match, and the plan
    folder/<table>/part-<key>.parquet   one part: its rows, and a record of what it holds
    folder/quarantine/<table>/...       parts that failed verification, moved aside with the reason
    folder/.writer.lock                 the process (or sharded process group) writing the folder

How a part is kept honest. It is written whole under a temporary name and renamed into place, so a killed run
leaves only whole parts. Inside its Parquet metadata it records its table, its key, the folder's identity
(a hash of the manifest's identity), what it holds (``holds``: for a study chunk, its prompt indices), its
row count and a SHA-256 of its rows. Every read verifies each part against that record and against the plan:
a file that is not Parquet (garbage, truncated), a part of another table, key or identity (a copy of another
part, a part of another run), or rows that do not match their checksum is moved to the quarantine with a
:class:`ResultsWarning` naming its new path, and counts as missing. A rerun recomputes what is missing; a read
refuses an incomplete table with :class:`IncompleteResults`, which names the missing keys and the command that
completes them (``allow_partial=True`` reads what is there and says so).

A run that fails before writing anything (a model that does not load) leaves no folder behind where it made
one. One writer at a time: :meth:`ResultsFolder.writing` holds ``.writer.lock`` (pid, host, process group) for
the duration of a run. A second run refuses with :class:`FolderBusy` naming the holder; a lock left by a
process that no longer runs on this host is taken over with a :class:`ResultsWarning`. The processes of one
sharded launch (torchrun, accelerate) share a group and write together.

Contents: :class:`ResultsFolder`, :class:`IncompleteResults`, :class:`FolderBusy`, :class:`ResultsWarning`,
:func:`identity_hash`, :func:`digest`.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

Model = TypeVar("Model")  # whatever ``load`` returns (a LoadedModel); the store does not look inside
MANIFEST = "manifest.json"
LOCK = ".writer.lock"
QUARANTINE = "quarantine"
RECORD_KEY = b"tempo_lab.part"


class ResultsWarning(UserWarning):
    """A results folder was repaired: a part quarantined, or a stale writer lock taken over."""


class IncompleteResults(ValueError):
    """A table of a results folder lacks parts; ``missing`` maps each table to its missing keys."""

    def __init__(self, folder: Path, missing: Mapping[str, Sequence[str]], resume: str):
        self.missing = {t: list(k) for t, k in missing.items() if k}
        lines = "; ".join(f"{t}: {len(k)} missing part(s) ({_shown(k)})" for t, k in self.missing.items())
        super().__init__(
            f"{folder} is incomplete: {lines}. Complete it with: {resume} (or read what is there with "
            "allow_partial=True)"
        )


class FolderBusy(ValueError):
    """Another process (or process group) is writing the results folder."""


def identity_hash(identity: Mapping[str, Any]) -> str:
    """SHA-256 (16 hex digits) of a manifest's identity, as canonical JSON."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def digest(table: pa.Table) -> str:
    """SHA-256 of a table's rows as canonical JSON (independent of how Arrow chunks or annotates them)."""
    rows = json.dumps(table.to_pylist(), sort_keys=True, default=str)
    return hashlib.sha256(rows.encode()).hexdigest()


class ResultsFolder:
    """One results folder (see the module docstring). Its users decide the tables, the part keys, what each
    part holds and the identity hash its parts must carry (:func:`identity_hash` of the manifest's identity
    keys); this class writes, verifies, quarantines and locks."""

    def __init__(self, path: str | Path):
        if not isinstance(path, (str, Path)) or not str(path).strip():
            raise ValueError(f"a results folder needs a path, got {path!r}")
        self.path = Path(path)
        self._created = False  # this object made the folder: a run that writes nothing removes it again

    # --- the manifest ---

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    def read_manifest(self) -> dict:
        if not self.manifest_path.is_file():
            raise FileNotFoundError(f"no results in {self.path} (no {MANIFEST})")
        try:
            return json.loads(self.manifest_path.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"{self.manifest_path} is not a readable manifest ({exc})") from exc

    def check_writable(self) -> None:
        """Create the folder and write a probe file in it; ``ValueError`` naming the folder if that fails.
        Runs before any model work, so a run never computes what it cannot keep."""
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"{self.path} is a file, not a results folder: give a folder path")
        try:
            self._created = self._created or not self.path.exists()
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / f".probe.{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ValueError(f"cannot write results to {self.path}: {exc.strerror or exc}") from exc

    def load_before_claiming(self, names: Sequence[str], load: Callable[[str], Model]) -> dict[str, Model]:
        """Before a new folder is claimed, every model of ``names`` loads: a name that does not load raises
        here and leaves no folder behind, so the corrected retry runs. The first is returned (``{name:
        model}``, kept for the run); the others are checked and let go, one model in memory at a time. A
        folder already claimed loads nothing (``{}``): its models load when its missing parts need them."""
        if self.manifest_path.exists() or not names:
            return {}
        first, *rest = names
        kept = {first: load(first)}
        for name in rest:
            load(name)
        return kept

    def claim(self, manifest: dict, identity_keys: Sequence[str], grows: Sequence[str] = ()) -> None:
        """Write ``manifest`` for a new folder, or check that the folder's manifest agrees on every key of
        ``identity_keys`` it holds (a folder of another run is refused, never mixed in). Of an existing
        manifest only the keys it lacks and the keys named in ``grows`` (e.g. the measurements asked for so
        far) are updated; the rest stays as the first run wrote it, so reading or resuming a folder does not
        rewrite it."""
        found = self.read_manifest() if self.manifest_path.exists() else None
        if found is not None:
            wrong = [k for k in identity_keys if k in found and found[k] != manifest.get(k)]
            if wrong:
                k = wrong[0]
                raise ValueError(
                    f"{self.path} holds results with another {k} ({found.get(k)!r}, not "
                    f"{manifest.get(k)!r}); refusing to mix results: give a new folder"
                )
            merged = {**manifest, **found, **{k: manifest[k] for k in grows if k in manifest}}
            if merged == found:
                return
            manifest = merged
        self.path.mkdir(parents=True, exist_ok=True)
        _write_atomic(self.manifest_path, json.dumps(manifest, indent=1, sort_keys=True) + "\n")

    # --- parts ---

    def part_path(self, table: str, key: str) -> Path:
        return self.path / table / f"part-{key}.parquet"

    def write(self, table: str, key: str, rows: pd.DataFrame | list[dict], identity: str, holds: Any) -> Path:
        """Write one part whole, with its record (see the module docstring), then move it into place."""
        frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
        data = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
        record = {"table": table, "key": key, "identity": identity, "holds": holds, "rows": data.num_rows,
                  "sha256": digest(data)}  # fmt: skip
        path = self.part_path(table, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        pq.write_table(data.replace_schema_metadata({RECORD_KEY: json.dumps(record).encode()}), tmp)
        tmp.replace(path)
        return path

    def verified(self, table: str, expected: Mapping[str, Any], identity: str) -> dict[str, pd.DataFrame]:
        """The parts of ``table`` that pass verification, by key. ``expected``: key -> what that part must
        hold. Every part that fails is quarantined (:class:`ResultsWarning`); so is a part no key expects."""
        folder = self.path / table
        found = sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []
        good: dict[str, pd.DataFrame] = {}
        for path in found:
            key = path.stem.removeprefix("part-")
            frame, problem = _check(path, table, key, expected, identity)
            if problem is None:
                good[key] = frame
            else:
                self.quarantine(path, table, problem)
        return good

    def quarantine(self, path: Path, table: str, reason: str) -> Path:
        """Move a failed part aside into ``quarantine/<table>/`` and warn with its new path."""
        target_dir = self.path / QUARANTINE / table
        target_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S")
        target = target_dir / f"{path.name}.{stamp}.{os.getpid()}"
        try:
            path.replace(target)
        except FileNotFoundError:  # another process of a sharded run moved it first
            return target
        warnings.warn(f"{path} failed verification ({reason}); moved to {target}", ResultsWarning,
                      stacklevel=3)  # fmt: skip
        return target

    # --- one writer ---

    @contextmanager
    def writing(self, group: str | None = None) -> Iterator[None]:
        """Hold the folder's writer lock for the block (see the module docstring). ``group``: processes
        passing the same non-empty group (one sharded launch) share the lock; the first one creates it and
        removes it on exit."""
        me = {"pid": os.getpid(), "host": socket.gethostname(), "group": group or "",
              "since": time.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip
        lock = self.path / LOCK
        owner = self._acquire(lock, me)
        try:
            yield
        finally:
            if owner and _read_lock(lock) == me:
                lock.unlink(missing_ok=True)
            if owner and self._created and self.path.is_dir() and not any(self.path.iterdir()):
                self.path.rmdir()  # made by this run, which wrote nothing (a model that failed to load)

    def _acquire(self, lock: Path, me: dict) -> bool:
        """Take the lock (``True``), join our group's (``False``), or raise :class:`FolderBusy`."""
        for _ in range(50):
            if _create_exclusive(lock, me):
                return True
            held = _read_lock(lock)
            if held is None:  # being written or removed this instant
                time.sleep(0.05)
                continue
            if me["group"] and held.get("group") == me["group"]:
                return False
            if held.get("host") == me["host"] and not _alive(held.get("pid")):
                warnings.warn(
                    f"taking over {lock}: its writer (pid {held.get('pid')}, since {held.get('since')}) no "
                    "longer runs", ResultsWarning, stacklevel=4,
                )  # fmt: skip
                lock.unlink(missing_ok=True)
                continue
            raise FolderBusy(
                f"{self.path} is being written by pid {held.get('pid')} on {held.get('host')} (since "
                f"{held.get('since')}); wait for it to finish, or, if no such process runs, delete {lock}"
            )
        raise FolderBusy(f"could not take the writer lock {lock}")


def _check(path: Path, table: str, key: str, expected: Mapping[str, Any], identity: str):
    """``(frame, None)`` for a part that verifies, else ``(None, reason)``."""
    try:
        data = pq.read_table(path)
        raw = (data.schema.metadata or {}).get(RECORD_KEY)
        record = json.loads(raw) if raw else None
    except (OSError, pa.ArrowException, ValueError) as exc:
        return None, f"not a readable Parquet file: {exc}"
    if not isinstance(record, dict):
        return None, "it carries no record of what it holds"
    if record.get("identity") != identity:
        return None, "it was written by another run (its identity differs from the manifest's)"
    if record.get("table") != table or record.get("key") != key:
        return None, f"it is a copy of {record.get('table')}/part-{record.get('key')}"
    if key not in expected:
        return None, "the plan has no such part"
    if record.get("holds") != expected[key]:
        return None, "it holds other rows than the plan gives this part"
    data = data.replace_schema_metadata(None)
    if data.num_rows != record.get("rows") or digest(data) != record.get("sha256"):
        return None, "its rows do not match their recorded checksum"
    return data.to_pandas(), None


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)


def _create_exclusive(path: Path, content: dict) -> bool:
    """Create ``path`` holding ``content`` only if it does not exist (atomic: written aside, then linked)."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(content))
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def _read_lock(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _shown(keys: Sequence[str], limit: int = 8) -> str:
    keys = list(keys)
    return ", ".join(keys[:limit]) + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")
