"""tempo_lab as an lm-evaluation-harness model, held to lm-eval's own ``HFLM`` on the same checkpoint:
log-likelihoods of requests (an empty context, a trailing space), rolling log-likelihoods over several
windows, and the greedy answers of RULER niah_single_1 samples at 1k tokens; lm-eval's own evaluator run end
to end; a method applied equals the forward under it; bad model_args refused naming the key."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import real_atol
from tests.interop.cases import needs

needs("lm_eval", "eval")

from lm_eval.api.instance import Instance  # noqa: E402

from tempo_lab.extension import RopeScaling, scaled  # noqa: E402
from tempo_lab.forward import DecodingCore  # noqa: E402
from tempo_lab.interop.harness import NAME, TempoLabLM  # noqa: E402
from tempo_lab.layout import Layout  # noqa: E402
from tempo_lab.tiny import tiny_random  # noqa: E402

PAIRS = [("The capital of France is", " Paris"), ("Once upon a time ", "there was"), ("", "Hello world"),
         ("2 + 2 =", " 4")]  # fmt: skip


@pytest.fixture(scope="module")
def lm():
    from tempo_lab import load_model

    return load_model(attn_implementation="sdpa")


@pytest.fixture(scope="module")
def both(lm):
    from lm_eval.models.huggingface import HFLM

    hf = HFLM(pretrained=lm.tokenizer.name_or_path, dtype="float32", device="cpu", batch_size=1)
    return TempoLabLM(lm), hf


@pytest.mark.bundled
def test_loglikelihoods_equal_hflm(lm, both):
    ours, hf = both
    requests = [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(PAIRS)]
    got, want = ours.loglikelihood(requests, disable_tqdm=True), hf.loglikelihood(requests, disable_tqdm=True)
    for (a, greedy_a), (b, greedy_b) in zip(got, want, strict=True):
        assert a == pytest.approx(b, abs=real_atol(lm, b)) and greedy_a == greedy_b


@pytest.mark.bundled
def test_rolling_loglikelihoods_over_several_windows_equal_hflm(both):
    ours, hf = both
    request = [Instance("loglikelihood_rolling", {}, ("The grass is green. " * 40,), 0)]
    ours.max_length, hf._max_length = 64, 64  # 161 tokens: three windows
    try:
        got, want = ours.loglikelihood_rolling(request, True), hf.loglikelihood_rolling(request, True)
    finally:
        ours.max_length, hf._max_length = ours.method.length, None
    assert got[0] == pytest.approx(want[0], rel=1e-4)


@pytest.mark.bundled
def test_greedy_answers_to_ruler_samples_equal_hflm(lm, both):
    from tempo_lab.long_context.ruler import ruler_samples

    ours, hf = both
    samples = ruler_samples(lm, 1024, 2)
    gen = {"until": [], "max_gen_toks": 16, "do_sample": False}
    requests = [Instance("generate_until", s.doc, (s.context, gen), i) for i, s in enumerate(samples)]
    got = ours.generate_until(requests, disable_tqdm=True)
    assert got == hf.generate_until(requests, disable_tqdm=True)
    assert any(s.value in text for s, text in zip(samples, got, strict=True))


@pytest.mark.bundled
def test_lm_evals_own_evaluator_runs_the_model_by_its_registered_name(lm):
    import lm_eval
    from lm_eval.api.registry import get_model

    assert get_model(NAME) is TempoLabLM
    folder = lm.tokenizer.name_or_path
    results = lm_eval.simple_evaluate(
        model=NAME, model_args=f"pretrained={folder},tokenizer={folder}", tasks=["niah_single_1"], limit=2,
        metadata={"max_seq_lengths": [1024]}, gen_kwargs="max_gen_toks=16",
    )  # fmt: skip
    assert 0.0 <= results["results"]["niah_single_1"]["1024,none"] <= 1.0


def test_a_method_scores_as_the_forward_under_it():
    tiny = tiny_random("llama")
    model = TempoLabLM(tiny, method="yarn", factor="2")
    ids = model.tok_encode("Once upon a time there was")
    got = model._logprobs(ids)
    with scaled(tiny, RopeScaling.yarn(2.0)):
        logits = DecodingCore(tiny).forward(torch.tensor([ids]), Layout.contiguous(len(ids)))[0]
    want = torch.log_softmax(logits, -1)
    assert model.max_length == 2 * tiny.model.config.max_position_embeddings
    torch.testing.assert_close(got, want.double(), rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"temperature": 0.7}, "temperature: not a key tempo_lab knows"),
     ({"method": "rope"}, "method='rope': choose one of"),
     ({"method": "pi", "factor": "0"}, "factor must be"),
     ({"method": "pi", "factor": "two"}, "factor='two' is not a number"),
     ({"method": "yarn", "factor": "2", "max_length": "100000"}, "is beyond it"),
     ({"tokenizer": "/nowhere"}, "is not the model's own")],
)
def test_bad_model_args_are_refused_naming_the_key(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TempoLabLM(tiny_random("llama"), **kwargs)


def test_a_sampling_request_is_refused():
    model = TempoLabLM(tiny_random("llama"))
    request = Instance("generate_until", {}, ("Hi", {"do_sample": True, "temperature": 0.8}), 0)
    with pytest.raises(ValueError, match="generates greedily"):
        model.generate_until([request], disable_tqdm=True)
