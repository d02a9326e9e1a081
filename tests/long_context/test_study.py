"""The long-context study's folder: every cell of a small plan computed once, resumed without recomputing,
a lost part recomputed alone and named when read, methods inside the trained context standing on the plain
rows, the rules recorded, another spec refused, bad settings refused before anything runs."""

from __future__ import annotations

import pytest

from tempo_lab.claims import fingerprints
from tempo_lab.long_context.evidence import CLAIMS
from tempo_lab.long_context.passkey import VERSIONS
from tempo_lab.long_context.study import LongContextSpec, read_long_context, run_long_context
from tempo_lab.results import IncompleteResults, ResultsFolder

SMALL = LongContextSpec(models=("smollm2-135m",), methods=("plain", "yarn"), real=(1024,), real_n=1,
                        real_n_more=1, gaps=(1024, 16384), gap_source=1024, gap_n=1, near_source=1024,
                        near_n=1, start_far=(4096,), window=512, windows=2, per_part=1)  # fmt: skip


@pytest.fixture(scope="module")
def loads():
    return []


@pytest.fixture(scope="module")
def folder(tmp_path_factory, loads):
    pytest.importorskip("lm_eval")
    from tempo_lab import load_model

    def load(name):
        loads.append(name)
        return load_model(name, attn_implementation="sdpa")

    path = tmp_path_factory.mktemp("lc")
    run_long_context(path, SMALL, progress=False, load=load)
    return path


pytestmark = pytest.mark.bundled


def test_every_cell_is_computed_once_and_the_rules_are_recorded(folder, loads):
    study = read_long_context(folder)
    assert loads == ["smollm2-135m"] and study.missing == {}
    p = study.passkey
    assert set(p.version) == set(VERSIONS)
    computed = p[p.setting != "as plain"]
    cells = set(zip(computed.method, computed.length, strict=True))
    assert cells >= {("plain", 1024), ("plain", 16384), ("yarn", 16384)}
    assert set(p[(p.method == "yarn") & (p.length == 1024)].setting) == {"as plain"}
    assert (p.score.isin([0.0, 1.0])).all() and (p.logprob < 0).all()
    assert set(study.loss.window) == {0, 1} and set(study.loss.setting) == {"", "as plain"}
    assert study.manifest["rules"] == fingerprints(CLAIMS)
    assert 0 < study.cpu_hours() < 1
    own = study.loss[study.loss.setting == ""]
    losses = len(set(zip(own.window, own.method, strict=True)))
    assert losses >= 2 and losses < len(set(zip(study.loss.window, study.loss.method, strict=True)))
    assert study.decided_by() == (
        f"smollm2-135m, float32, {len(computed)} passkey answers and {losses} window losses (2 text windows) "
        "computed"
    )


def test_a_second_run_loads_nothing_and_a_lost_part_is_recomputed_alone(folder, loads):
    run_long_context(folder, SMALL, progress=False, load=lambda name: loads.append(name))
    assert loads == ["smollm2-135m"]  # nothing missing: no model loaded
    part = ResultsFolder(folder).part_path("passkey", "smollm2-135m-gap-plain-16384-s000")
    kept = {p: p.stat().st_mtime_ns for p in (folder / "passkey").glob("part-*.parquet") if p != part}
    part.unlink()
    with pytest.raises(IncompleteResults, match="smollm2-135m-gap-plain-16384-s000"):
        read_long_context(folder)
    from tempo_lab import load_model

    run_long_context(folder, SMALL, progress=False,
                     load=lambda name: load_model(name, attn_implementation="sdpa"))
    assert part.exists()
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # the others untouched


def test_a_plan_grown_by_a_version_computes_only_its_cells(folder):
    """A folder computed before a version joined the plan (the ``distance`` version did, after the rest of
    the committed study): its parts are missing, named, and computed alone; the manifest's plan grows."""
    import json

    store = ResultsFolder(folder)
    manifest = store.read_manifest()
    grown = manifest["plan"]["passkey"]
    older = {**manifest, "plan": {**manifest["plan"], "passkey": [k for k in grown if "-distance-" not in k]}}
    store.manifest_path.write_text(json.dumps(older, indent=1, sort_keys=True) + "\n")
    new = [store.part_path("passkey", k) for k in grown if "-distance-" in k]
    assert len(new) == 2
    for path in new:
        path.unlink()
    kept = {p: p.stat().st_mtime_ns for p in (folder / "passkey").glob("part-*.parquet")}
    with pytest.raises(IncompleteResults, match="smollm2-135m-distance-plain-4096-s000"):
        read_long_context(folder)
    from tempo_lab import load_model

    run_long_context(folder, SMALL, progress=False,
                     load=lambda name: load_model(name, attn_implementation="sdpa"))
    assert all(p.exists() for p in new) and store.read_manifest()["plan"]["passkey"] == grown
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    found = read_long_context(folder).passkey
    assert set(found[found.version == "distance"].distance) == {4096.0, 16384.0}


def test_a_folder_of_another_spec_is_refused(folder):
    with pytest.raises(ValueError, match="refusing to mix results"):
        run_long_context(folder, LongContextSpec(models=("smollm2-135m",), gap_n=3), progress=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"gap_n": 0}, "gap_n must be"), ({"methods": ("yarn",)}, "must include 'plain'"),
     ({"methods": ("plain", "rope")}, "must include 'plain'"), ({"models": ()}, "models must be a non-empty"),
     ({"real_n": 501}, "at most 500"), ({"gaps": (2048, -1)}, r"gaps\[1\] must be"),
     ({"gaps": 5}, "gaps must be a non-empty list")],  # the last one found by tests/test_properties.py
)
def test_bad_settings_are_refused_before_anything_runs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LongContextSpec(**kwargs)
