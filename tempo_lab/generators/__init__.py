"""Generators built on one decoding core (:mod:`tempo_lab.generators.core`)."""

from tempo_lab.generators.core import DecodingCore, Prefix, branch, cache_length

__all__ = ["DecodingCore", "Prefix", "branch", "cache_length"]
