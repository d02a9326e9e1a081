"""The bands' angles past the trained context: what each scaling's frequency table implies, checked on the
properties each method is built to have (on a tiny Llama trained at 512 positions, 8 bands)."""

from __future__ import annotations

import pytest

from tempo_lab.extension import RopeScaling
from tempo_lab.extension.angles import band_angles
from tempo_lab.interventions import Rotary
from tempo_lab.tiny import tiny_random


@pytest.fixture(scope="module")
def lm():
    return tiny_random(
        "llama", max_position_embeddings=512, rope_parameters={"rope_type": "default", "rope_theta": 10000.0}
    )


def test_each_methods_angles(lm):
    factor, trained, length = 4.0, 512, 2048
    scalings = {"plain": None, "pi": RopeScaling.linear(factor), "ntk": RopeScaling.ntk(factor),
                "yarn": RopeScaling.yarn(factor)}  # fmt: skip
    angles = band_angles(lm, length, scalings)
    plain = angles[angles.method == "plain"].set_index("band")
    # the model's own bands, as Rotary measures them from its rotary module's output
    measured = Rotary(lm).bands().set_index("band").wavelength
    assert plain.wavelength.sub(measured).abs().max() < 1e-3 * measured.min()
    # plain: steps unchanged; a band reaches new angles exactly when it made less than a turn in training
    assert (plain.step == 1).all()
    assert ((plain.unseen > 0) == (plain.trained_turns < 1 - 1e-9)).all()
    slow = plain[plain.trained_turns * 4 < 1]  # still under a turn at 4x: the new share is 1 - 511/2047
    assert len(slow) and slow.unseen.sub(1 - (trained - 1) / (length - 1)).abs().max() < 1e-9
    # PI: every step divided by the factor; positions 0..2047 / 4 end at 511.75, 0.75 past the trained 511,
    # so only the bands under a turn see new angles, 0.75 / 511.75 of their range
    pi = angles[angles.method == "pi"].set_index("band")
    assert pi.step.sub(1 / factor).abs().max() < 1e-6
    assert pi.unseen[plain.trained_turns < 1].sub(0.75 / ((length - 1) / factor)).abs().max() < 1e-9
    assert (pi.unseen[plain.trained_turns >= 1] == 0).all()
    # NTK: the highest band kept, the lowest divided by the factor
    ntk = angles[angles.method == "ntk"].set_index("band")
    assert ntk.step.iloc[0] == pytest.approx(1.0) and ntk.step.iloc[-1] == pytest.approx(1 / factor, rel=1e-5)
    # YaRN: bands that turn fast in training extrapolate (step 1), slow ones interpolate (step 1/factor)
    yarn = angles[angles.method == "yarn"].set_index("band")
    fast, slow_ = yarn[plain.trained_turns > 32], yarn[plain.trained_turns < 1]
    assert (
        len(fast)
        and fast.step.sub(1.0).abs().max() < 1e-6
        and len(slow_)
        and slow_.step.sub(1 / factor).abs().max() < 1e-6
    )
    assert trained == lm.model.config.max_position_embeddings


def test_bad_length_is_refused(lm):
    with pytest.raises(ValueError, match="length"):
        band_angles(lm, 0, {"plain": None})
