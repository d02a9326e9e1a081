"""The results folder cannot lie: every fault of a part is caught on resume and on read, one writer at a time.

Faults, each on a real study of the tiny model: a part overwritten with garbage, truncated, replaced by a
copy of another part, deleted, or taken from a study with other conditions. Each is quarantined (or found
missing), reported with its path, refused on read with the missing chunks and the command that completes
them, and recomputed on resume to the uninterrupted table.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import pandas as pd
import pytest

from tempo_lab import load_model
from tempo_lab.phenomena.conditions import Conditions
from tempo_lab.results import FolderBusy, IncompleteResults, ResultsFolder, ResultsWarning
from tempo_lab.studies import read_study, run_study

PHENOMENA = ["retroactive", "fractional"]
N, BATCH = 12, 4  # three chunks per measurement


@pytest.fixture(scope="module")
def lm():
    return load_model("tiny-random")


@pytest.fixture(scope="module")
def clean(lm, tmp_path_factory):
    """An uninterrupted study, and its tables."""
    folder = tmp_path_factory.mktemp("clean") / "study"
    study = run_study(lm, n=N, results=folder, phenomena=PHENOMENA, batch_size=BATCH, progress=False)
    return folder, {p: study.table(p) for p in PHENOMENA}


def copy_of(clean, tmp_path):
    folder = tmp_path / "study"
    shutil.copytree(clean[0], folder)
    return folder


def part(folder, chunk=1, phenomenon="retroactive"):
    return folder / phenomenon / f"part-{chunk:05d}.parquet"


def resumed_equal(lm, folder, clean):
    """Rerun the study on the damaged folder; its tables must equal the uninterrupted run's."""
    study = run_study(lm, n=N, results=folder, phenomena=PHENOMENA, batch_size=BATCH, progress=False)
    for p in PHENOMENA:
        pd.testing.assert_frame_equal(study.table(p), clean[1][p])


def garbage(path):
    path.write_bytes(b"\x00not parquet at all" * 40)


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:1000])


def copy_chunk_0(path):
    shutil.copy(path.with_name("part-00000.parquet"), path)


@pytest.mark.parametrize("damage", [garbage, truncate, copy_chunk_0], ids=lambda f: f.__name__)
def test_a_damaged_part_is_quarantined_refused_on_read_and_recomputed_on_resume(lm, clean, tmp_path, damage):
    folder = copy_of(clean, tmp_path)
    damage(part(folder))
    quarantined = r"part-00001.parquet failed verification .* moved to .*quarantine"
    with pytest.warns(ResultsWarning, match=quarantined):
        with pytest.raises(IncompleteResults) as err:
            read_study(folder)
    message = str(err.value)
    assert "retroactive: 1 missing part(s) (00001)" in message and "run_study(" in message
    assert list((folder / "quarantine" / "retroactive").iterdir())  # kept aside, not deleted
    resumed_equal(lm, folder, clean)


def test_a_copied_part_never_gives_duplicated_rows(lm, clean, tmp_path):
    folder = copy_of(clean, tmp_path)
    copy_chunk_0(part(folder))
    with pytest.warns(ResultsWarning) as caught:
        study = read_study(folder, allow_partial=True)
        table = study.table("retroactive")
    assert not table.duplicated(["prompt", "gap"]).any()
    assert study.missing == {"retroactive": ["00001"]}
    said = [str(w.message) for w in caught]
    assert any("it is a copy of retroactive/part-00000" in m for m in said)
    assert any("reading a partial study" in m and "retroactive: chunks 00001" in m for m in said)


def test_a_deleted_part_is_named_and_a_partial_read_says_so(lm, clean, tmp_path):
    folder = copy_of(clean, tmp_path)
    part(folder, 2, "fractional").unlink()
    with pytest.raises(IncompleteResults, match=r"fractional: 1 missing part\(s\) \(00002\)"):
        read_study(folder)
    with pytest.warns(ResultsWarning, match="reading a partial study .* fractional: chunks 00002"):
        study = read_study(folder, allow_partial=True)
    full = clean[1]["fractional"]
    assert len(study.table("fractional")) == len(full) - 4
    resumed_equal(lm, folder, clean)


def test_a_part_of_a_study_with_other_conditions_is_foreign(lm, clean, tmp_path):
    folder = copy_of(clean, tmp_path)
    other = tmp_path / "other"
    run_study(lm, n=N, results=other, phenomena=["retroactive"], batch_size=BATCH, progress=False,
              conditions=Conditions(retro_gaps=(0, 3)))  # fmt: skip
    shutil.copy(part(other), part(folder))
    with pytest.warns(ResultsWarning, match="written by another run"), pytest.raises(IncompleteResults):
        read_study(folder)
    resumed_equal(lm, folder, clean)


def test_a_second_writer_is_refused_naming_the_first(tmp_path):
    folder = ResultsFolder(tmp_path)
    child = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])  # alive until killed
    try:
        lock = tmp_path / ".writer.lock"
        lock.write_text(json.dumps({"pid": child.pid, "host": socket.gethostname(), "group": "",
                                    "since": "2026-11-30 12:00:00"}))  # fmt: skip
        held = rf"being written by pid {child.pid} on .* \(since 2026-11-30 12:00:00\)"
        with pytest.raises(FolderBusy, match=held):
            with folder.writing():
                pass
        assert lock.exists()  # the holder's lock is left alone
    finally:
        child.kill()
        child.wait()
    # the holder is gone: its lock is stale and taken over, with a notice; released on exit
    with pytest.warns(ResultsWarning, match=f"pid {child.pid}.*no longer runs"):
        with folder.writing():
            assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not lock.exists()


def test_processes_of_one_launch_share_the_lock(tmp_path):
    folder = ResultsFolder(tmp_path)
    with folder.writing(group="run-1/2"):
        assert json.loads((tmp_path / ".writer.lock").read_text())["group"] == "run-1/2"
        # another process of the same launch joins; one of another launch is refused
        with folder.writing(group="run-1/2"):
            pass
        assert (tmp_path / ".writer.lock").exists()  # only its creator removes it
        with pytest.raises(FolderBusy):
            with folder.writing(group="run-2/2"):
                pass
    assert not (tmp_path / ".writer.lock").exists()


def test_a_manifest_of_another_run_is_refused(tmp_path):
    folder = ResultsFolder(tmp_path)
    folder.claim({"model": "a", "plan": [1], "note": "first"}, ["model"])
    before = folder.manifest_path.stat().st_mtime_ns
    folder.claim({"model": "a", "plan": [1], "note": "second"}, ["model"], grows=["plan"])
    assert folder.read_manifest()["note"] == "first"  # kept as the first run wrote it
    assert folder.manifest_path.stat().st_mtime_ns == before  # nothing changed: nothing rewritten
    folder.claim({"model": "a", "plan": [1, 2], "extra": 3}, ["model"], grows=["plan"])
    assert folder.read_manifest() == {"model": "a", "plan": [1, 2], "note": "first", "extra": 3}
    with pytest.raises(ValueError, match="another model .*'a'.*'b'"):
        folder.claim({"model": "b"}, ["model"])


def test_every_model_loads_before_a_new_folder_is_claimed_and_a_claimed_one_loads_none(tmp_path):
    loaded: list[str] = []

    def load(name: str) -> str:
        if name == "missing":
            raise FileNotFoundError(f"no model {name!r}")
        loaded.append(name)
        return f"model {name}"

    store = ResultsFolder(tmp_path / "study")
    with pytest.raises(FileNotFoundError, match="'missing'"):
        store.load_before_claiming(["a", "missing"], load)
    assert not store.path.exists()  # nothing claimed: the corrected retry starts clean
    kept = store.load_before_claiming(["a", "b"], load)
    assert kept == {"a": "model a"}  # the first kept, the second checked and let go
    assert loaded == ["a", "a", "b"]
    store.claim({"study": "x"}, ["study"])
    assert store.load_before_claiming(["a", "missing"], load) == {}  # a claimed folder loads its models later
    assert loaded == ["a", "a", "b"]
