"""State of the tempo_lab blocks open in the current context, for the attention functions they register.

A registered attention function (transformers' ``AttentionInterface``) is called with the attention module
and its tensors, nothing else, so the block that switched the model to it (an intervention, Self-Extend, a
row capture) leaves what each module should do where the function can find it. Keeping that in a global
dictionary would let two blocks in two threads (or two kernels' cells sharing a process) see each other's
settings. :class:`PerModule` keeps it in a :class:`contextvars.ContextVar`: a block binds its entries on
entry, and the mapping it found is restored on exit, also after an exception; nested blocks see the inner
binding while it is open, and another thread sees only its own. :func:`attending` switches the model to such a
function for the block and puts back what it attended through before.

Contents: :class:`PerModule`, :func:`attending`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import TYPE_CHECKING, Generic, TypeVar

from torch import nn

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedModel

T = TypeVar("T")


class PerModule(Generic[T]):
    """An immutable mapping ``id(module) -> T`` per context; :meth:`bound` opens a block's entries."""

    def __init__(self, name: str):
        self._var: ContextVar[Mapping[int, T]] = ContextVar(name, default=MappingProxyType({}))

    def get(self, module: nn.Module | int) -> T | None:
        """The entry of ``module`` (or of the id given) in the innermost open block, or ``None``."""
        return self._var.get().get(module if isinstance(module, int) else id(module))

    def __getitem__(self, module: nn.Module) -> T:
        found = self.get(module)
        if found is None:
            raise RuntimeError(
                f"no tempo_lab block open in this context holds {type(module).__name__} {id(module):#x}: the "
                "model attends through a tempo_lab function outside its block (another thread's block?)"
            )
        return found

    @contextmanager
    def bound(self, entries: Mapping[int, T]) -> Iterator[None]:
        """Inside the block, ``entries`` (``id(module) -> T``) over whatever was bound before."""
        token = self._var.set(MappingProxyType({**self._var.get(), **entries}))
        try:
            yield
        finally:
            self._var.reset(token)


@contextmanager
def attending(model: PreTrainedModel, implementation: str) -> Iterator[None]:
    """Inside the block ``model`` attends through ``implementation`` (a registered attention function, or
    ``"eager"``); on exit, also after an exception, it attends through what it did before."""
    original = model.config._attn_implementation
    if implementation != original:
        model.set_attn_implementation(implementation)
    try:
        yield
    finally:
        if model.config._attn_implementation != original:
            model.set_attn_implementation(original)
