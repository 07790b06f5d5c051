"""Attention registry: every mechanism builds from its name.

`build_attention(cfg, query_dim, memory_dim)` looks `cfg.kind` up (family names `global`,
`local` and `monotonic` resolve to a sensible default of their family) and passes only that
kind's options, through the class's `from_config`.

`build_cross_attention(cfg, dim)` is the same for the Transformer decoder's cross-attention,
which is always multi-head: `global` is multihead (scaled dot product per head), and the local
and monotonic kinds run as `attention.heads` heads of their own (`HeadwiseAttention`).
"""

from __future__ import annotations

from asrkit.config import AttentionConfig
from asrkit.io import UserError
from asrkit.model.attention.additive import AdditiveAttention
from asrkit.model.attention.base import Attention
from asrkit.model.attention.dot import DotAttention, GeneralAttention
from asrkit.model.attention.hard import StochasticHardAttention
from asrkit.model.attention.headwise import HeadwiseAttention
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
        raise UserError(f"unknown attention kind {kind!r} (valid: {valid})")
    return name


# The Transformer decoder's cross-attention: families and the kinds it can run per head.
CROSS_FAMILIES: dict[str, str] = {
    "global": "multihead",
    "local": "local-m",
    "monotonic": "monotonic",
}
CROSS_KINDS: tuple[str, ...] = ("multihead", "local-m", "local-p", "monotonic", "mocha")


def resolve_cross_kind(kind: str) -> str:
    """Family or member name -> a kind the Transformer decoder runs; others are a UserError."""
    name = CROSS_FAMILIES.get(kind, kind)
    if name not in CROSS_KINDS:
        valid = ", ".join([*CROSS_FAMILIES, *CROSS_KINDS])
        raise UserError(
            f"attention.kind {kind!r} is not supported by the transformer decoder (valid: {valid})"
        )
    return name


def build_cross_attention(cfg: AttentionConfig, dim: int) -> Attention:
    """One Transformer decoder block's cross-attention over (B, T, dim) frames."""
    kind = resolve_cross_kind(cfg.kind)
    if kind == "multihead":
        return MultiHeadAttention(dim, dim, cfg.dim, cfg.heads, cfg.scaling)
    return HeadwiseAttention(REGISTRY[kind], cfg, dim, dim)


def build_attention(cfg: AttentionConfig, query_dim: int, memory_dim: int) -> Attention:
    """The mechanism `cfg.kind` names, for (B, query_dim) queries and (B, T, memory_dim) frames."""
    cls = REGISTRY[resolve_kind(cfg.kind)]
    return cls.from_config(cfg, query_dim, memory_dim)  # type: ignore[attr-defined]


__all__ = [
    "CROSS_FAMILIES",
    "CROSS_KINDS",
    "FAMILIES",
    "MEMBERS",
    "REGISTRY",
    "Attention",
    "build_attention",
    "build_cross_attention",
    "resolve_cross_kind",
    "resolve_kind",
]
