"""The seed claims of ``CLAIMS.md``, decided over a study: one row per claim, with its interval and verdict.

Each row holds the original claim and number, the single-prompt number from notebooks 01-05 (their
``key-numbers`` cells), the measurement over the study's prompts (mean with its 95% bootstrap interval, or
a paired test) and a verdict from a fixed rule stated in the row:

- **confirmed**: the interval (or test) agrees with the claim;
- **refuted**: it excludes the claim;
- **refined**: the claim holds only in part, and the row says which part;
- **undecided**: the prompts give too little to test it (e.g. no parallel sets on a tiny random model).

Contents: :func:`claims_table`, :func:`fmt_ci`.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from tempo_lab.studies import stats


def fmt_ci(mean: float, lo: float, hi: float, digits: int = 3) -> str:
    """``0.812 [0.801, 0.823]``."""
    return f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _ci(values) -> tuple[float, float, float]:
    return stats.bootstrap_ci(pd.Series(values).astype(float))


def _nearest(by_gap: Mapping[str, float], gap: float) -> str:
    """A single-prompt notebook's value at the gap it ran nearest to ``gap``: ``"0.1652 at +6"``."""
    key = min(by_gap, key=lambda k: abs(float(k) - gap))
    return f"{by_gap[key]:.4f} at +{key}"


def _row(claim: str, original: str, single: str, at_scale: str, verdict: str, rule: str) -> dict:
    return {"claim": claim, "original": original, "single prompt": single, "at scale": at_scale,
            "verdict": verdict, "rule": rule}  # fmt: skip


def claims_table(study, single: Mapping[str, Mapping]) -> pd.DataFrame:
    """Decide every seed claim over ``study`` (all six measurements run). ``single``: notebook number
    (``"01"``..``"05"``) -> that notebook's key numbers."""
    rows = []
    drop = study.table("gap_dropout")
    no_mask = drop[(drop.strategy == "default_no_cache") & (drop.gap > 0)]
    zero = (no_mask.prompt_mass == 0).mean()
    rows.append(_row(
        "no mask: after any gap the prompt gets no attention", "0.000 at gaps 1, 5, 10, 20",
        f"{single['01']['max_prompt_mass_after_gap_default_no_cache']:.4f} (largest, gaps 1-100)",
        f"{fmt_ci(*_ci(no_mask.prompt_mass))}; exactly 0 in {zero:.1%} of {len(no_mask)} rows",
        "confirmed" if zero == 1 else "refuted", "confirmed if every prompt and gap gives exactly 0",
    ))  # fmt: skip
    mask = drop[drop.strategy == "additive_4d"]
    far = mask.gap.max()
    m0, mfar = _ci(mask[mask.gap == 0].prompt_mass), _ci(mask[mask.gap == far].prompt_mass)
    test = stats.paired_test(
        mask[mask.gap == far].prompt_mass.to_numpy(), mask[mask.gap == 0].prompt_mass.to_numpy()
    )
    verdict = (
        "refuted"
        if mfar[2] < 0.5
        else ("refined" if test["p"] < 0.05 and test["mean_diff"] < 0 else "confirmed")
    )
    rows.append(_row(
        "an explicit mask restores the prompt's attention (1.000 at every gap)", "1.000 at gaps 0-20",
        f"{single['01']['prompt_mass_additive_4d']['0']:.4f} at gap 0, "
        f"{single['01']['prompt_mass_additive_4d']['20']:.4f} at gap 20",
        f"{fmt_ci(*m0)} at gap 0, {fmt_ci(*mfar)} at gap {far:g} (paired p = {test['p']:.2g})",
        verdict, "refined if restored (> 0.5) but lower at the largest gap (Wilcoxon p < 0.05)",
    ))  # fmt: skip
    frac = study.table("fractional")
    tv, changed, between = _ci(frac.tv_high), _ci(frac.top1_changed), _ci(frac.between)
    rows.append(_row(
        "a fractional position (k+0.5) shifts the next-token distribution", "max probability change 0.0263",
        f"TV {single['02']['tv_half_step_forward']:.4f} against the natural position",
        f"TV {fmt_ci(*tv)}; top-1 changes in {fmt_ci(*changed)}; "
        f"between its neighbours in {fmt_ci(*between)}",
        "confirmed" if tv[1] > 0 else "refuted", "confirmed if the TV interval excludes 0",
    ))  # fmt: skip
    retro = study.table("retroactive")
    gaps = sorted(retro.gap.unique())
    near, far_gap = gaps[1], gaps[-1]
    tv_near, tv_far = _ci(retro[retro.gap == near].tv), _ci(retro[retro.gap == far_gap].tv)
    same_far = _ci(retro[retro.gap == far_gap].top1_same)
    rows.append(_row(
        "re-placing a token further away changes what follows it", "' there' 43% at +0 -> ',\\n' at +16",
        f"TV {_nearest(single['03']['tv_by_gap'], near)}, {_nearest(single['03']['tv_by_gap'], far_gap)}",
        f"TV {fmt_ci(*tv_near)} at +{near:g}, {fmt_ci(*tv_far)} at +{far_gap:g}; "
        f"top-1 kept in {fmt_ci(*same_far)} at +{far_gap:g}",
        "confirmed" if tv_far[1] > tv_near[2] else "refined",
        "confirmed if the far-gap TV interval lies above the near one",
    ))  # fmt: skip
    modes = study.table("modes")
    iso = modes[modes["mode"] == "isolated"].set_index("prompt")
    vis = modes[modes["mode"] == "visible"].set_index("prompt").loc[iso.index]
    same = _ci(iso.identical_text)
    rows.append(_row(
        "isolated and visible sets give identical texts", "identical in 4 of 4 runs",
        "identical" if single["04"]["identical_sets"]
        else f"differ from step {single['04']['first_differing_step']}",
        f"identical in {fmt_ci(*same)} of {len(iso)} prompts",
        "confirmed" if same[1] > 0.9 else ("refuted" if same[2] < 0.5 else "refined"),
        "confirmed if the interval lies above 0.9, refuted if below 0.5",
    ))  # fmt: skip
    try:
        paired = stats.paired_test(iso.later_mass.to_numpy(), vis.later_mass.to_numpy())
        measured = (
            f"{paired['relative']:+.2%}, "
            f"difference {fmt_ci(paired['mean_diff'], paired['lo'], paired['hi'], 4)}, "
            f"Wilcoxon p = {paired['p']:.2g}, effect r = {paired['effect']:+.2f}, {paired['n']} prompts"
        )
        verdict = "confirmed" if paired["p"] >= 0.05 else "refuted"
    except ValueError as exc:  # too few prompts formed parallel sets in both modes
        measured, verdict = f"no paired test: {exc}", "undecided"
    rows.append(_row(
        "later tokens' attention on parallel sets does not depend on the mode",
        "-2.8% +/- 27.1% (p = 0.505, 48 prompts)",
        f"{single['04']['later_mass_relative_change_mean']:+.2%} (one prompt)",
        measured, verdict, "confirmed if the paired Wilcoxon test finds no difference (p >= 0.05)",
    ))  # fmt: skip
    comp = study.table("compressed")
    cg = sorted(comp.gap.unique())
    agree = {g: _ci(comp[comp.gap == g].agreement) for g in cg[1:]}
    rep = {g: _ci(comp[comp.gap == g].repetition) for g in (cg[0], cg[-1])}
    rows.append(_row(
        "gap 5 is the best balance for compressed thoughts", "gap 5 chosen by eye (one prompt)",
        f"agreement with gap 0: {single['05']['mean_agreement_with_first_gap']['5']:.4f} at 5, "
        f"{single['05']['mean_agreement_with_first_gap']['20']:.4f} at 20",
        "agreement " + ", ".join(f"{fmt_ci(*v)} at {g:g}" for g, v in agree.items())
        + f"; repetition {fmt_ci(*rep[cg[0]])} at 0, {fmt_ci(*rep[cg[-1]])} at {cg[-1]:g}",
        "refined", "no single best gap: agreement falls with the gap; the row gives the trade-off",
    ))  # fmt: skip
    tempo = study.table("tempo")
    sizes = {t: _ci(tempo[tempo.threshold == t].mean_set_size) for t in sorted(tempo.threshold.unique())}
    share = _ci(tempo[tempo.threshold == 0.1].parallel_share) if 0.1 in sizes else None
    rows.append(_row(
        "every token above the threshold joins the set ({sat, jumped, ran} at 0.1)", "3 members at 0.1",
        f"sizes {single['04']['set_sizes']} at 0.1",
        "mean size " + ", ".join(f"{fmt_ci(*v)} at {t:g}" for t, v in sizes.items())
        + (f"; 2+ members in {fmt_ci(*share)} of steps at 0.1" if share else ""),
        "confirmed" if share and share[1] > 0.5 else "refined",
        "confirmed if most steps at 0.1 select 2+ members; refined (the row says how often) if not",
    ))  # fmt: skip
    return pd.DataFrame(rows)
