"""Studies end to end on the tiny model: resume after a kill, sharding over two processes, foreign folders,
bad prompts, prompt sets and the statistics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from tempo_lab import load_model, stats
from tempo_lab.phenomena import DEFAULT_STUDY
from tempo_lab.phenomena.conditions import Conditions
from tempo_lab.prompts import as_prompt_set, bundled_prompts
from tempo_lab.results import ResultsWarning
from tempo_lab.studies import PromptProblems, read_study, run_study
from tempo_lab.studies.run import chunks
from tempo_lab.tiny import byte_tokenizer, tiny_random
from tests.helpers import HANG_S, real_atol

ROOT = Path(__file__).resolve().parents[2]
STUDY = ["--model", "tiny-random", "--limit", "36", "--batch-size", "2", "--no-progress"]


@pytest.fixture(scope="module")
def lm():
    return load_model("tiny-random")


def tables(study) -> dict[str, pd.DataFrame]:
    return {p: study.table(p) for p in DEFAULT_STUDY}


def assert_same_tables(a: dict, b: dict) -> None:
    for p in DEFAULT_STUDY:
        pd.testing.assert_frame_equal(a[p], b[p], check_exact=False, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def reference(lm, tmp_path_factory):
    """An uninterrupted single-process run of the study the other tests interrupt and shard."""
    folder = tmp_path_factory.mktemp("reference")
    return tables(run_study(lm, n=36, results=folder, batch_size=2, progress=False))


def test_bundled_prompt_set_has_300_varied_prompts():
    prompts = bundled_prompts()
    assert len(prompts) >= 300 and len(set(prompts.prompts)) == len(prompts)
    kinds = pd.Series(prompts.kinds).value_counts()
    assert set(kinds.index) >= {"narrative", "factual", "dialogue", "instruction", "question", "list", "code",
                                "poetry", "chat"} and kinds.min() >= 30  # fmt: skip
    head = prompts.head(18)
    assert pd.Series(head.kinds).value_counts().tolist() == [2] * 9  # spread over the kinds


def test_any_list_file_or_column_is_a_prompt_set(tmp_path):
    (tmp_path / "p.txt").write_text("one\ntwo\n\nthree\n")
    assert as_prompt_set(tmp_path / "p.txt").prompts == ("one", "two", "three")
    assert as_prompt_set(pd.Series(["a", "b"], index=[5, 9])).prompts == ("a", "b")
    assert as_prompt_set(["x"]).kinds == ("prompt",)
    assert as_prompt_set(["a", "b"]).fingerprint != as_prompt_set(["b", "a"]).fingerprint


def test_bad_prompt_sets_are_refused_naming_the_index(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        as_prompt_set([])
    with pytest.raises(ValueError, match="prompt 2 repeats prompt 0: 'a'"):
        as_prompt_set(["a", "b", "a"])
    with pytest.raises(ValueError, match="prompt 1 is empty"):
        as_prompt_set(["a", "  "])
    with pytest.raises(ValueError, match="no prompt file"):
        as_prompt_set(str(tmp_path / "missing.txt"))


def test_bad_prompts_are_named_and_the_others_kept(tmp_path):
    tok = byte_tokenizer()
    from tokenizers import normalizers

    tok.backend_tokenizer.normalizer = normalizers.Replace("~", "")
    lm = tiny_random(tokenizer=tok)
    prompts = ["The cat sat", "~~~", "x" * 600, "A", "Once upon a time"]
    with pytest.raises(PromptProblems) as err:
        run_study(lm, prompts, results=tmp_path, phenomena=["retroactive"], progress=False)
    assert set(err.value.problems) == {1, 2, 3}
    assert "encodes to no tokens" in err.value.problems[1]
    assert "past the model's context of 512" in err.value.problems[2]
    assert "prompt 3: it has one token" in str(err.value)
    kept = read_study(tmp_path, prompts).table("retroactive")
    assert sorted(set(kept.prompt)) == [0, 4]
    study = run_study(
        lm, prompts, results=tmp_path, phenomena=["retroactive"], problems="skip", progress=False
    )
    assert set(study.problems) == {1, 2, 3}


def test_a_folder_of_another_model_or_prompt_set_is_refused(lm, tmp_path):
    run_study(lm, ["The cat", "A dog"], results=tmp_path, phenomena=["fractional"], progress=False)
    with pytest.raises(ValueError, match="another model"):
        other = tiny_random("qwen2", name="tiny-qwen2")
        run_study(other, ["The cat", "A dog"], results=tmp_path, phenomena=["fractional"], progress=False)
    with pytest.raises(ValueError, match="another prompt_set"):
        run_study(lm, ["The cat", "A cow"], results=tmp_path, phenomena=["fractional"], progress=False)
    with pytest.raises(ValueError, match="another conditions"):
        run_study(lm, ["The cat", "A dog"], results=tmp_path, phenomena=["fractional"], progress=False,
                  conditions=Conditions(retro_gaps=(0, 3)))  # fmt: skip


def test_a_bfloat16_study_records_its_dtype_in_the_folder_tables_and_verdicts(lm, tmp_path):
    from tempo_lab import phenomena

    prompts = ["The cat sat", "A dog ran far", "Once upon a time"]
    study = run_study("tiny-random", prompts, results=tmp_path, phenomena=["retroactive"], dtype="bfloat16",
                      progress=False)  # fmt: skip
    assert study.manifest["dtype"] == "bfloat16" and set(study.table("retroactive").dtype) == {"bfloat16"}
    decided = phenomena.claims_table(study, {"03": {"tv_by_gap": {"6": 0.2}}})
    assert decided["decided by"].tolist() == ["tiny-random, bfloat16, 3 prompts"]
    # the rows are bfloat16's own: they differ from float32's, by less than bfloat16's resolution allows
    full = run_study(lm, prompts, results=tmp_path / "f32", phenomena=["retroactive"], progress=False)
    a, b = study.table("retroactive").tv.to_numpy(), full.table("retroactive").tv.to_numpy()
    assert not np.array_equal(a, b) and np.abs(a - b).max() < 0.05
    with pytest.raises(ValueError, match="another dtype"):  # the folder is bfloat16's
        run_study(lm, prompts, results=tmp_path, phenomena=["retroactive"], progress=False)
    with pytest.raises(ValueError, match="dtype='bfloat16' applies when run_study loads the model.*float64"):
        run_study(lm, prompts, results=tmp_path / "x", dtype="bfloat16", progress=False)


def test_chunks_group_prompts_of_similar_length():
    assert chunks([5, None, 2, 5, 3], 2) == [[2, 4], [0, 3]]


def test_a_killed_study_resumes_and_recomputes_nothing_written(lm, reference, tmp_path):
    folder = tmp_path / "killed"
    cmd = [sys.executable, "-m", "tempo_lab.cli", "study", "--results", str(folder), *STUDY]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + HANG_S
    while len(list(folder.glob("*/part-*.parquet"))) < 12 and proc.poll() is None:
        assert time.monotonic() < deadline, f"the study wrote no parts in {HANG_S:.0f} s: a hang"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = {p: p.stat().st_mtime_ns for p in folder.glob("*/part-*.parquet")}
    total = len(DEFAULT_STUDY) * 18
    assert 12 <= len(written) < total, "the kill came too late to test a resume"
    with pytest.warns(ResultsWarning, match="taking over .*no longer runs"):  # the killed run's lock
        study = run_study(lm, n=36, results=folder, batch_size=2, progress=False)
    after = {p: p.stat().st_mtime_ns for p in folder.glob("*/part-*.parquet")}
    assert len(after) == total
    assert all(after[p] == t for p, t in written.items())  # nothing written before the kill was recomputed
    got = tables(study)
    for p in DEFAULT_STUDY:
        keys = [c for c in ("prompt", "strategy", "mode", "gap", "threshold") if c in got[p].columns]
        assert not got[p].duplicated(keys).any()
    assert_same_tables(got, reference)


def test_two_processes_under_torchrun_write_the_single_process_table(reference, tmp_path):
    torchrun = Path(sys.executable).parent / "torchrun"
    folder = tmp_path / "sharded"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [str(torchrun), "--nproc_per_node", "2", "-m", "tempo_lab.cli", "study", "--results", str(folder),
           *STUDY]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=HANG_S, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "process 0 of 2" in done.stdout and "process 1 of 2" in done.stdout
    assert_same_tables(tables(read_study(folder)), reference)


def test_bootstrap_interval_is_seeded_and_covers_the_mean():
    x = np.random.default_rng(1).normal(3.0, 1.0, 400)
    mean, lo, hi = stats.bootstrap_ci(x)
    assert lo < mean < hi and mean == pytest.approx(x.mean())
    assert hi - lo == pytest.approx(2 * 1.96 * x.std() / np.sqrt(x.size), rel=0.15)
    assert stats.bootstrap_ci(x) == (mean, lo, hi)
    with pytest.raises(ValueError, match="no values"):
        stats.bootstrap_ci([float("nan")])


def test_paired_test_agrees_with_scipy_and_signs_the_effect():
    rng = np.random.default_rng(0)
    b = rng.normal(0, 1, 60)
    a = b + 0.5 + rng.normal(0, 0.5, 60)
    res = stats.paired_test(a, b)
    assert res["p"] == pytest.approx(scipy_stats.wilcoxon(a - b).pvalue)
    d = a - b
    ranks = scipy_stats.rankdata(abs(d))
    assert res["effect"] == pytest.approx((ranks[d > 0].sum() - ranks[d < 0].sum()) / ranks.sum())
    assert res["effect"] > 0.8 and res["lo"] < 0.5 < res["hi"]
    assert stats.paired_test(b, a)["effect"] == pytest.approx(-res["effect"])
    with pytest.raises(ValueError, match="same length"):
        stats.paired_test([1, 2], [1])


def test_summarize_groups_with_intervals():
    t = pd.DataFrame({"g": ["a"] * 50 + ["b"] * 50, "v": [0.0] * 50 + [1.0] * 50})
    s = stats.summarize(t, "v", ["g"])
    assert s["mean"].tolist() == [0.0, 1.0] and s["n"].tolist() == [50, 50]


def _committed() -> list[tuple[str, str]]:
    """``(folder, phenomenon)`` for every measurement of the committed study folders (06 and 09)."""
    found = []
    for folder in ("06_claims_at_scale", "09_where_position_acts"):
        manifest = json.loads((ROOT / "results" / folder / "manifest.json").read_text())
        found += [(folder, p) for p in manifest["phenomena"]]
    return found


@pytest.mark.bundled
@pytest.mark.parametrize(("folder", "phenomenon"), _committed())
def test_the_committed_studies_match_a_recomputation_by_the_single_prompt_path(bundled, folder, phenomenon):
    """Notebooks 06 and 09 read results/06_claims_at_scale and results/09_where_position_acts: two of their
    prompts, recomputed now one at a time through the single-prompt path (not the batched one that wrote
    them), give their rows."""
    from tempo_lab.phenomena import SINGLE
    from tempo_lab.prompts import encode

    study = read_study(ROOT / "results" / folder)
    assert study.manifest["model"] == bundled.name and len(study.prompts) >= 300
    table = study.table(phenomenon)
    picks = [0, len(study.prompts) - 1]
    cond = Conditions.from_dict(study.manifest["conditions"])
    single = SINGLE[phenomenon]
    rows = [row for i in picks for row in single(bundled, i, encode(bundled, study.prompts, i), cond)]
    keys = [c for c in ("prompt", "strategy", "mode", "measure", "gap", "threshold", "index")
            if c in table.columns]  # fmt: skip
    stored = table[table.prompt.isin(picks)].sort_values(keys, ignore_index=True)
    fresh = pd.DataFrame(rows).sort_values(keys, ignore_index=True)
    assert len(fresh) == len(stored)
    for column in fresh.columns:
        want = stored[column].reset_index(drop=True)
        if fresh[column].dtype.kind == "f":
            np.testing.assert_allclose(fresh[column], want, atol=real_atol(bundled, want), equal_nan=True,
                                       err_msg=column)
        else:
            assert fresh[column].tolist() == want.tolist(), column


def test_stored_result_views_show_the_table_values(lm, tmp_path):
    from tempo_lab.phenomena.retroactive import display as retroactive_display
    from tempo_lab.phenomena.tempo_sets import display as tempo_sets_display

    study = run_study(lm, n=12, results=tmp_path, phenomena=["retroactive", "tempo_sets"], progress=False)
    gap_view = retroactive_display.study_view(study)
    table = study.table("retroactive")
    kind = table.kind.iloc[0]
    rows = table[(table.kind == kind) & (table.gap == 16)]
    shown = gap_view(kind=kind, gap=16)
    mean, lo, hi = stats.bootstrap_ci(rows.tv)
    assert f"TV {mean:.3f} [{lo:.3f}, {hi:.3f}] over {len(rows)} prompts" in shown.text
    assert shown.figure is not None
    with pytest.raises(ValueError, match="'sonnet' is not in the study"):
        gap_view(kind="sonnet", gap=16)
    threshold_view = tempo_sets_display.study_view(study)
    sizes = study.table("tempo_sets").query("threshold == 0.2").mean_set_size
    shown = threshold_view(kind="all", threshold=0.2)
    assert f"mean set size {stats.bootstrap_ci(sizes)[0]:.3f}" in shown.text
