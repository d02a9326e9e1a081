"""The long-context claims' evidence from a study's tables, against the statistics computed by hand on the
same numbers, and the rules' dependencies (LC2-LC4 and LC7 undecided unless LC1 is confirmed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tempo_lab import stats
from tempo_lab.claims import claims_table
from tempo_lab.long_context.evidence import CLAIMS, bucket_loss, loss_levels
from tempo_lab.long_context.study import LongContextSpec, LongContextStudy

rng = np.random.default_rng(0)


def _rows(model, version, method, length, scores):
    return [{"model": model, "version": version, "method": method, "setting": "", "length": length,
             "sample": i, "score": float(s), "seconds": 1.0} for i, s in enumerate(scores)]  # fmt: skip


def _study(acc16: float, se16: float) -> LongContextStudy:
    s = "smollm2-135m"
    real4 = np.ones(20)
    real16 = (rng.uniform(size=20) < acc16).astype(float)
    rows = _rows(s, "real", "plain", 4096, real4) + _rows(s, "real", "plain", 16384, real16)
    rows += _rows(s, "real", "self_extend", 16384, (rng.uniform(size=20) < se16).astype(float))
    rows += _rows(s, "gap", "plain", 16384, np.concatenate([real16, np.zeros(30)]))
    rows += _rows(s, "gap", "plain", 4096, np.ones(50))
    rows += _rows(s, "distance", "plain", 16384, np.concatenate([real16, np.zeros(30)]))
    rows += _rows(s, "distance", "plain", 4096, np.r_[np.ones(30), np.zeros(20)])
    rows += _rows(s, "natural", "plain", 2048, np.ones(50))
    rows += _rows(s, "start_far", "plain", 16384, np.ones(50))
    loss = []
    for method, rise in [("plain", 2.0), ("yarn", 0.05), ("pi", 1.0)]:
        for w in range(6):
            for b in range(0, 16383, 256):
                value = 2.0 + (rise if b >= 8192 else 0.0) + 0.01 * w
                loss.append({"model": s, "method": method, "setting": "", "length": 16384, "window": w,
                             "bin": b, "loss": value, "tokens": 256, "seconds": 0.0})  # fmt: skip
    manifest = {"study": "long_context", "spec": LongContextSpec().header()}
    return LongContextStudy(pd.DataFrame(rows), pd.DataFrame(loss), manifest, {})


def test_lc1_is_newcombe_on_the_two_real_cells():
    study = _study(acc16=0.0, se16=0.0)
    values = CLAIMS[0].measure(study, {}).values
    k16 = int(study.passkey.query("version == 'real' and method == 'plain' and length == 16384").score.sum())
    assert (values["d"], values["d_lo"], values["d_hi"]) == pytest.approx(stats.newcombe(20, 20, k16, 20))


def test_verdicts_follow_the_registered_rules_and_their_dependencies():
    failing = claims_table(_study(acc16=0.0, se16=1.0), {}, CLAIMS).set_index("key").verdict
    assert failing["LC1"] == "confirmed" and failing["LC2"] == "confirmed"
    assert failing["LC4"] == "confirmed"  # the question 16k after the needle fails as the real 16k: distance
    assert failing["LC7"] == "confirmed"  # start-far retrieves as the natural one
    assert failing["LC6"] == "confirmed" and failing["LC6.yarn"] == "confirmed"
    assert failing["LC6.pi"] == "refined"  # better than plain by 1 nat, not back within 0.1
    assert failing["LC3.pi"] == "undecided"  # not computed: NaN decides nothing
    retrieving = claims_table(_study(acc16=1.0, se16=1.0), {}, CLAIMS).set_index("key").verdict
    assert retrieving["LC1"] == "refuted"
    assert retrieving["LC2"] == retrieving["LC4"] == retrieving["LC7"] == "undecided"


def test_lc4_reads_the_claims_files_gap_version_and_lc4_positions_the_other_post_hoc():
    """LC4 is decided on the ``distance`` version (the question D after the needle), as registered; the
    study's other gap version (a D-token sample's positions) gets the same rule post hoc (LC4.positions)."""
    study = _study(acc16=0.0, se16=1.0)
    p = study.passkey
    one = (p.version == "distance") & (p.length == 4096)
    study.passkey = p.assign(score=p.score.where(~one, 0.0))  # the distance version fails at 4k too
    table = claims_table(study, {}, CLAIMS).set_index("key")
    assert table.loc["LC4", "verdict"] == "undecided"  # g inside the margin, f = 0: neither one
    assert table.loc["LC4.positions", "verdict"] == ""  # no registered rule
    assert table.loc["LC4.positions", "post hoc"].startswith("confirmed (")  # gap 4k 50/50, 16k as real
    values = {c.key: c.measure(study, {}).values for c in CLAIMS}
    assert values["LC4"]["f"] == 0.0 and values["LC4.positions"]["f"] == pytest.approx(1.0)


def test_bucket_loss_weighs_the_bins_by_their_tokens():
    study = _study(0.0, 0.0)
    far = bucket_loss(study, "plain", 12288, 16384)
    assert far.to_numpy() == pytest.approx(4.0 + 0.01 * np.arange(6))
    assert len(bucket_loss(study, "ntk", 0, 16384)) == 0


def test_loss_levels_are_lc6s_statistics_for_every_method_a_rule_reads_or_not():
    """k and b per window by hand (YaRN rises 0.05 past 8k where plain rises 2.0, PI 1.0: k = rise, b = 2.0
    minus it, the same in every window); an NTK no rule reads gets the same statistics; each equals the value
    LC6's rule for the method reads."""
    study = _study(0.0, 0.0)
    ntk = study.loss[study.loss.method == "pi"].assign(method="ntk")
    study.loss = pd.concat([study.loss, ntk], ignore_index=True)
    levels = loss_levels(study).set_index("method")
    assert list(levels.index) == ["pi", "ntk", "yarn"]  # METHODS' order
    for method, rise in [("yarn", 0.05), ("pi", 1.0), ("ntk", 1.0)]:
        row = levels.loc[method]
        assert (row.k, row.k_lo, row.k_hi) == pytest.approx((rise,) * 3)
        assert (row.b, row.b_lo, row.b_hi) == pytest.approx((2.0 - rise,) * 3)
        assert row.windows == 6
    ruled = {c.key: c.measure(study, {}).values for c in CLAIMS}
    for method in ("yarn", "pi"):
        assert ruled[f"LC6.{method}"]["k"] == levels.loc[method, "k"]
    assert len(loss_levels(LongContextStudy(study.passkey, pd.DataFrame(), study.manifest, {}))) == 0


def test_the_differences_figure_draws_each_computed_statistic_at_its_interval():
    import matplotlib

    matplotlib.use("Agg")
    from tempo_lab.long_context.display import differences_figure

    study = _study(acc16=0.0, se16=1.0)
    fig = differences_figure(study)
    passkey, loss = fig.axes
    labels = [t.get_text() for t in passkey.get_yticklabels()]
    assert "LC2 s = acc method - acc plain, 16k: confirmed" in labels
    assert not any(label.startswith("LC3") for label in labels)  # not computed: left out, not drawn at NaN
    values = CLAIMS[1].measure(study, {}).values  # LC2
    row = len(labels) - 1 - labels.index("LC2 s = acc method - acc plain, 16k: confirmed")  # drawn bottom-up
    drawn = [line for line in passkey.lines if list(line.get_ydata()) == [row]]
    assert drawn[0].get_xdata()[0] == pytest.approx(values["s"])
    named = {f"{c.key} {n} = {w}" for c in CLAIMS for n, w in c.measure(study, {}).statistics.items()}
    assert {t.get_text().rsplit(": ", 1)[0] for t in loss.get_yticklabels()} <= named


def test_each_claim_names_exactly_the_statistics_it_gives_an_interval():
    """The figure's words come from the claim: each named statistic has its interval in the values, and
    each interval in the values has its words (else the figure would drop or mislabel it)."""
    study = _study(acc16=0.0, se16=1.0)
    for claim in CLAIMS:
        evidence = claim.measure(study, {})
        intervals = {k[: -len("_lo")] for k in evidence.values if k.endswith("_lo")}
        intervals -= {k for k in intervals if k.endswith("90")}  # LC4's 90% interval of g, not a statistic
        assert set(evidence.statistics) == intervals, claim.key


def test_the_differences_figure_names_lc5s_own_statistic():
    """LC1 and LC5 both call theirs d; LC5's is Gemma 3's gap version at 16k against 64k, not 4k - 16k."""
    import matplotlib

    matplotlib.use("Agg")
    from tempo_lab.long_context.display import differences_figure

    study = _study(acc16=0.0, se16=1.0)
    gemma = _rows("gemma3-270m", "gap", "plain", 16384, np.ones(50)) + _rows(
        "gemma3-270m", "gap", "plain", 65536, np.zeros(50)
    )
    study.passkey = pd.concat([study.passkey, pd.DataFrame(gemma)], ignore_index=True)
    labels = [t.get_text() for t in differences_figure(study).axes[0].get_yticklabels()]
    lc5 = [label for label in labels if label.startswith("LC5")]
    assert lc5 and all("gap 16k - acc gap 64k" in label for label in lc5)
    assert any(label.startswith("LC1 d = acc 4k - acc 16k (plain)") for label in labels)


def test_the_passkey_figure_draws_equal_accuracies_apart_at_their_length():
    """Two methods with the same accuracy at 16k (the study's YaRN and dynamic NTK) are both visible: each
    drawn at its own accuracy, at distinct places near 16k, and the samples per point named once."""
    import matplotlib

    matplotlib.use("Agg")
    from tempo_lab.long_context.display import passkey_figure

    study = _study(acc16=0.0, se16=1.0)
    same = study.passkey[(study.passkey.method == "self_extend") & (study.passkey.version == "real")]
    p = pd.concat([study.passkey, same.assign(method="yarn")], ignore_index=True)
    right = passkey_figure(p.assign(trained=8192, distance=p.length)).axes[2]
    points = _points(right)
    at16 = [(x, y) for x, y in points if 16384 / 1.2 < x < 16384 * 1.2 and y == 1.0]
    assert len(at16) == 2 and at16[0][0] != at16[1][0], points
    assert "n=20 each" in right.get_title()


def test_the_passkey_figure_names_the_samples_per_length_once_where_each_length_has_one_count():
    """The real cells at 4k and 16k hold 20 samples, at 8k 10 (plain alone: the methods are plain there): the
    title names each length's count, no point is labelled; two counts at one length label every point."""
    import matplotlib

    matplotlib.use("Agg")
    from tempo_lab.long_context.display import passkey_figure

    study = _study(acc16=0.0, se16=1.0)
    at8 = study.passkey[(study.passkey.version == "real") & (study.passkey.length == 4096)]
    p = pd.concat([study.passkey, at8.head(10).assign(length=8192)], ignore_index=True)
    right = passkey_figure(p.assign(trained=8192, distance=p.length)).axes[2]
    assert right.get_title().endswith("\nn=20 at 4k, 10 at 8k, 20 at 16k"), right.get_title()
    assert not [t for t in right.texts if t.get_text().startswith("n=")]
    fewer = p.drop(p[(p.method == "self_extend") & (p.version == "real")].index[:5])  # 15 beside plain's 20
    right = passkey_figure(fewer.assign(trained=8192, distance=fewer.length)).axes[2]
    labels = sorted(t.get_text() for t in right.texts if t.get_text().startswith("n="))
    assert labels == ["n=10", "n=15", "n=20", "n=20"] and "n=" not in right.get_title(), labels


def _points(ax) -> list[tuple[float, float]]:
    """The measured points of a panel (the lines with markers; not the dotted trained context)."""
    return [(float(x), float(y)) for line in ax.lines for x, y in zip(line.get_xdata(), line.get_ydata(),
            strict=True) if line.get_marker() not in (None, "None", "", "_")]  # fmt: skip


def test_the_passkey_figure_draws_each_methods_gap_curve_without_the_rows_copied_from_plain():
    """The middle panel: the first model's gap version under each method, each at its own accuracy; a
    method's rows inside the trained context (copied from plain) are not drawn as the method's."""
    import matplotlib

    matplotlib.use("Agg")
    from tempo_lab.long_context.display import passkey_figure

    study = _study(acc16=0.0, se16=1.0)
    gap = study.passkey[(study.passkey.version == "gap") & (study.passkey.method == "plain")]
    yarn = pd.concat([gap[gap.length == 16384].assign(method="yarn", score=1.0),
                      gap[gap.length == 4096].assign(method="yarn", setting="as plain")])  # fmt: skip
    p = pd.concat([study.passkey, yarn], ignore_index=True)
    middle = passkey_figure(p.assign(trained=8192, distance=p.length)).axes[1]
    points = _points(middle)
    plain16 = float(gap[gap.length == 16384].score.mean())
    at16 = sorted(y for x, y in points if 16384 / 1.2 < x < 16384 * 1.2)
    assert at16 == sorted([plain16, 1.0]) and plain16 != 1.0, points  # plain and YaRN, each its own
    assert [(x, y) for x, y in points if 4096 / 1.2 < x < 4096 * 1.2] == [(4096, 1.0)], points  # alone, at 4k
    assert "n=50 each" in middle.get_title()


def test_the_passkey_figure_draws_the_gap_version_and_the_real_samples_at_the_same_d():
    """Left panel: the gap version at D and RULER's real D-token samples are the same positions, so both are
    drawn at D (the gap point just left of it, the real one just right), each at its own accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    from tempo_lab.long_context.display import passkey_figure

    study = _study(acc16=0.0, se16=1.0)
    p = study.passkey.assign(trained=8192, distance=study.passkey.length // 2)  # distance is not the x
    left = passkey_figure(p).axes[0]
    points = _points(left)
    for d in (4096, 16384):
        near = sorted((x, y) for x, y in points if d / 1.2 < x < d * 1.2)
        assert len(near) == 2 and near[0][0] < d < near[1][0], points  # gap left, real right
        gap = p[(p.version == "gap") & (p.method == "plain") & (p.length == d)].score.mean()
        real = p[(p.version == "real") & (p.method == "plain") & (p.length == d)].score.mean()
        assert [y for _, y in near] == [gap, real]
