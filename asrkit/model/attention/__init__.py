"""Attention registry: every mechanism builds from its name.

`build_attention(cfg, query_dim, memory_dim)` looks `cfg.kind` up (family names `global`,
`local` and `monotonic` resolve to a sensible default of their family) and passes only that
kind's options, through the class's `from_config`.
"""

from __future__ import annotations

from asrkit.config import AttentionConfig
from asrkit.io import UserError
from asrkit.model.attention.additive import AdditiveAttention
from asrkit.model.attention.base import Attention
from asrkit.model.attention.dot import DotAttention, GeneralAttention
from asrkit.model.attention.hard import StochasticHardAttention
from asrkit.model.attention.local import LocalMAttention, LocalPAttention
from asrkit.model.attention.location import LocationAttention
from asrkit.model.attention.mocha import MoChAAttention
from asrkit.model.attention.monotonic import MonotonicAttention
from asrkit.model.attention.multihead import MultiHeadAttention

REGISTRY: dict[str, type[Attention]] = {
    "dot": DotAttention,
    "general": GeneralAttention,
    "additive": AdditiveAttention,
    "location": LocationAttention,
    "multihead": MultiHeadAttention,
    "local-m": LocalMAttention,
    "local-p": LocalPAttention,
    "monotonic": MonotonicAttention,
    "mocha": MoChAAttention,
    "hard": StochasticHardAttention,
}

# A family name picks a sensible default member of that family.
FAMILIES: dict[str, str] = {"global": "location", "local": "local-m", "monotonic": "monotonic"}
# The members of each family (docs/attention.md §2-5); stochastic hard attention is in none.
MEMBERS: dict[str, tuple[str, ...]] = {
    "global": ("dot", "general", "additive", "location", "multihead"),
    "local": ("local-m", "local-p"),
    "monotonic": ("monotonic", "mocha"),
}


def resolve_kind(kind: str) -> str:
    """Family name or member name -> member name; unknown names are a UserError."""
    name = FAMILIES.get(kind, kind)
    if name not in REGISTRY:
        valid = ", ".join([*FAMILIES, *REGISTRY])
        raise UserError(f"unknown attention kind '{kind}' (valid: {valid})")
    return name


def build_attention(cfg: AttentionConfig, query_dim: int, memory_dim: int) -> Attention:
    """The mechanism `cfg.kind` names, for (B, query_dim) queries and (B, T, memory_dim) frames."""
    cls = REGISTRY[resolve_kind(cfg.kind)]
    return cls.from_config(cfg, query_dim, memory_dim)  # type: ignore[attr-defined]


__all__ = ["FAMILIES", "MEMBERS", "REGISTRY", "Attention", "build_attention", "resolve_kind"]
