"""tempo_lab as a model of lm-evaluation-harness: any task's requests through tempo_lab's forward, under any
extension method.

    import tempo_lab.interop.harness                      # registers the model "tempo_lab" with lm-eval
    lm_eval.simple_evaluate(model="tempo_lab", model_args="pretrained=smollm2-135m,method=yarn,factor=2",
                            tasks=["niah_single_1"], metadata={"max_seq_lengths": [16384]})

    tempo-lab eval --model tempo_lab --model_args method=self_extend,max_length=16384 --tasks niah_single_1

lm-eval 0.4.13 discovers models only among its own modules (tasks have ``--include_path``, models nothing
alike), so its ``lm_eval`` command cannot name this one; ``tempo-lab eval`` takes ``lm_eval``'s arguments
unchanged and runs lm-eval's own command line with the model registered. The model is a ``TemplateLM``, the
base class of lm-eval's ``HFLM``, so requests are tokenized by lm-eval's own code (the context / continuation
split, empty contexts, the rolling windows and the stop sequences are lm-eval's functions); only the forward
is tempo_lab's: every request runs one row at a time (no padding) through
:class:`~tempo_lab.forward.DecodingCore` under the method
(:class:`~tempo_lab.extension.methods.Method`), on the model's own causal path.

``model_args`` (unknown keys are refused, naming them):

- ``pretrained``: a bundled name or a folder (:func:`~tempo_lab.load_model`; default the bundled SmolLM2);
- ``method``: ``plain`` (default), ``pi``, ``ntk``, ``dynamic``, ``yarn``, ``self_extend``;
- ``factor``: the rescaling's factor (default: ``max_length`` over the trained context, at least 1);
- ``window``, ``group``: Self-Extend's (default: the study's rules for ``max_length``);
- ``max_length``: the longest sequence (default: the trained context, or ``factor`` times it); contexts are
  left-truncated to it as lm-eval's ``HFLM`` does;
- ``dtype``: the weights' dtype (default float32); ``max_gen_toks``: the default generation budget (256);
- ``tokenizer``: accepted (RULER's tasks read it to size their samples) and checked to be the model's own.

Greedy generation only: a request that samples is refused.

Contents: :class:`TempoLabLM`, :func:`main`, :data:`NAME`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from lm_eval import utils as lm_utils
from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs, postprocess_generated_text
from tqdm.auto import tqdm
from transformers import DynamicCache

from tempo_lab.extension.methods import METHODS, Method, self_extend_group
from tempo_lab.forward import DecodingCore
from tempo_lab.layout import Layout
from tempo_lab.loaded import LoadedModel, trained_context
from tempo_lab.plumbing import checks

NAME = "tempo_lab"
#: keys lm-eval adds to every model's arguments itself
INJECTED = ("batch_size", "max_batch_size", "device")
KNOWN = ("pretrained", "method", "factor", "window", "group", "max_length", "dtype", "max_gen_toks",
         "tokenizer")


def _number(key: str, value: Any, kind: type) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError):
        what = "an integer" if kind is int else "a number"
        raise ValueError(f"model_args {key}={value!r} is not {what}") from None


@register_model(NAME)
class TempoLabLM(TemplateLM):
    """The lm-eval model (see the module docstring)."""

    def __init__(self, pretrained: str | LoadedModel | None = None, method: str = "plain", **kwargs: Any):
        super().__init__()
        unknown = sorted(set(kwargs) - set(KNOWN) - set(INJECTED))
        if unknown:
            raise ValueError(
                f"model_args {', '.join(unknown)}: not a key tempo_lab knows; it knows {', '.join(KNOWN)}"
            )
        if method not in METHODS:
            raise ValueError(f"model_args method={method!r}: choose one of {', '.join(METHODS)}")
        if isinstance(pretrained, LoadedModel):
            self.lm = pretrained
        else:
            from tempo_lab.models import load_model

            self.lm = load_model(pretrained, attn_implementation="sdpa", dtype=kwargs.get("dtype"))
        if kwargs.get("tokenizer") not in (None, "") and Path(str(kwargs["tokenizer"])) != Path(
            self.lm.tokenizer.name_or_path
        ):
            raise ValueError(
                f"model_args tokenizer={kwargs['tokenizer']!r} is not the model's own "
                f"({self.lm.tokenizer.name_or_path}): RULER would size its samples with another tokenizer"
            )
        self.tokenizer = self.lm.tokenizer
        self.method = self._method(method, kwargs)
        self.max_length = self.method.length
        self.max_gen_toks = _number("max_gen_toks", kwargs.get("max_gen_toks", 256), int)
        self.core = DecodingCore(self.lm)

    def _method(self, name: str, kwargs: dict) -> Method:
        trained = trained_context(self.lm)
        factor = kwargs.get("factor")
        factor = None if factor in (None, "") else checks.positive("factor", _number("factor", factor, float))
        length = kwargs.get("max_length")
        if length in (None, ""):
            length = trained if factor is None or name in ("plain", "self_extend") else int(factor * trained)
        length = _number("max_length", length, int)
        if name == "self_extend":
            window = _number("window", kwargs.get("window", trained // 8), int)
            group = _number("group", kwargs.get("group", self_extend_group(length, trained, window)), int)
            return Method(name, length, trained, window=window, group=group)
        if factor is None:
            factor = max(1.0, length / trained) if name != "plain" else 1.0
        return Method(name, length, trained, factor=factor)

    # --- what TemplateLM asks for ---

    @property
    def eot_token_id(self) -> int:
        return self.tokenizer.eos_token_id

    @property
    def prefix_token_id(self) -> int:
        bos = self.tokenizer.bos_token_id
        return bos if bos is not None else self.eot_token_id

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs: Any) -> list[int]:
        """As lm-eval's ``HFLM``: the tokenizer's own special tokens unless told, none when the string
        already starts with the BOS token."""
        options = {} if add_special_tokens is None else {"add_special_tokens": add_special_tokens}
        bos = self.tokenizer.bos_token
        if add_special_tokens is None and bos and string.startswith(bos):
            options = {"add_special_tokens": False}
        return self.tokenizer.encode(string, **options)

    def tok_decode(self, tokens: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=skip_special_tokens)

    # --- the forward ---

    def _logprobs(self, tokens: list[int]) -> torch.Tensor:
        """``(n, vocab)`` log-probabilities of the next token after each of ``tokens`` (float64)."""
        ids = torch.tensor([tokens], device=self.lm.device)
        with self.method.applied(self.lm):
            logits = self.core.forward(ids, Layout.contiguous(len(tokens)))[0]
        return torch.log_softmax(logits.double(), -1)

    def _loglikelihood_tokens(
        self, requests, disable_tqdm: bool = False, **kwargs: Any
    ) -> list[tuple[float, bool]]:
        out = []
        for _, context, continuation in tqdm(requests, disable=disable_tqdm, desc="loglikelihood requests"):
            whole = (context + continuation)[-(self.max_length + 1) :][:-1]
            rows = self._logprobs(whole)[-len(continuation) :]
            target = torch.tensor(continuation, device=rows.device)
            greedy = bool((rows.argmax(-1) == target).all())
            out.append((float(rows.gather(-1, target[:, None]).sum()), greedy))
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        out = []
        for (text,) in tqdm([r.args for r in requests], disable=disable_tqdm, desc="rolling requests"):
            rolling = lm_utils.get_rolling_token_windows(
                token_list=self.tok_encode(text), prefix_token=self.prefix_token_id,
                max_seq_len=self.max_length, context_len=1,
            )  # fmt: skip
            windows = map(lm_utils.make_disjoint_window, rolling)
            scored = self._loglikelihood_tokens([(None, c, t) for c, t in windows], disable_tqdm=True)
            out.append(sum(logprob for logprob, _ in scored))
        return out

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        out = []
        eos = self.tok_decode([self.eot_token_id], skip_special_tokens=False)
        asked = [r.args for r in requests]
        for context, gen_kwargs in tqdm(asked, disable=disable_tqdm, desc="generate requests"):
            kwargs = normalize_gen_kwargs(dict(gen_kwargs), self.max_gen_toks)
            if kwargs.get("do_sample"):
                raise ValueError("tempo_lab generates greedily: this request samples (do_sample=True)")
            until = handle_stop_sequences(kwargs.pop("until", None), eos=eos)
            budget = kwargs.pop("max_gen_toks")
            tokens = self.tok_encode(context)[-(self.max_length - budget) :]
            text = self._greedy(tokens, budget, until)
            out.append(postprocess_generated_text(generation=text, stop=until, think_end_token=None))
        return out

    def _greedy(self, tokens: list[int], budget: int, until: list[str]) -> str:
        """Greedy continuation of ``tokens``: at most ``budget`` tokens, stopping at EOS or once a stop
        sequence appears in the text."""
        ids = torch.tensor([tokens], device=self.lm.device)
        cache = DynamicCache(config=self.lm.model.config)
        made: list[int] = []
        with self.method.applied(self.lm):
            logits = self.core.forward(ids, Layout.contiguous(len(tokens)), cache, last=True)[0, -1]
            for i in range(budget):
                token = int(logits.argmax())
                made.append(token)
                text = self.tok_decode(made)
                if token == self.eot_token_id or any(stop in text for stop in until):
                    break
                if i + 1 < budget:
                    step = torch.tensor([[token]], device=self.lm.device)
                    where = Layout.contiguous(1, start=len(tokens) + i)
                    logits = self.core.forward(step, where, cache, last=True)[0, -1]
        return self.tok_decode(made)


def main(argv: Sequence[str] | None = None) -> None:
    """``tempo-lab eval``: lm-eval's own command line, with the model ``tempo_lab`` registered."""
    from lm_eval.__main__ import cli_evaluate

    sys.argv = ["lm_eval", *(sys.argv[1:] if argv is None else argv)]
    cli_evaluate()
