"""A griffe extension for the documentation site: the docstrings' Sphinx roles (``:class:`~a.b.C```,
``:func:`f```, ...) become cross-references that mkdocs-autorefs resolves to the object's page, or plain code
where the object has no page (another library's, or one the reference does not render). mkdocstrings renders
Markdown, not reStructuredText roles: without this every role reached the page as raw text.

A role's target (or the ``<target>`` of ``:meth:`title <target>```) is taken as written when it is a full
path (``tempo_lab.x.Y``), else relative to the docstring's module (``:meth:`Layout.step``` in
``tempo_lab.layout``; ``:mod:`.probe``` in a package). A leading ``~`` shows the last component only, as
Sphinx does. The reference is an optional ``autoref`` (resolved if the object is documented, shown as code if
not), so an unresolvable target never fails ``mkdocs build --strict``.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROOTS = {"tempo_lab", "torch", "transformers", "lm_eval", "nnsight", "transformer_lens", "pandas",
         "matplotlib", "ipywidgets"}  # fmt: skip
ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj|const|type):`(?P<target>[^`]+)`")


def _identifier(target: str, module: str, package: bool) -> str:
    if target.startswith("."):
        base = module if package else module.rsplit(".", 1)[0]
        return base + target
    if "." in target and target.split(".", 1)[0] in ROOTS:
        return target
    return f"{module}.{target}"


def convert(text: str, module: str, package: bool = False) -> str:
    """``text`` with every role replaced by an optional autoref (see the module docstring)."""

    def one(match: re.Match) -> str:
        target = match["target"].strip()
        explicit = re.fullmatch(r"(?P<title>.+?)\s*<(?P<target>[^<>]+)>", target)  # :meth:`title <target>`
        if explicit:
            title, target = explicit["title"], explicit["target"]
        short = target.startswith("~")
        target = target.lstrip("~")
        if not explicit:
            title = target.rsplit(".", 1)[-1] if short else target.lstrip(".")
        identifier = _identifier(target, module, package)
        return f'<autoref identifier="{identifier}" optional><code>{title}</code></autoref>'

    return ROLE.sub(one, text)


class SphinxRoles(griffe.Extension):
    """Rewrites every docstring's roles once the object tree is complete."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is None or ":" not in obj.docstring.value:
            return
        module = obj.module
        obj.docstring.value = convert(obj.docstring.value, module.path, module.is_package)
