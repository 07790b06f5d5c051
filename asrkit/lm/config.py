"""What a language model is and how it is trained: two frozen dataclasses, values only.

`attnasr train-lm` builds an `LMExperimentConfig` from its options and `--set section.key=value`
overrides (the same parser as the acoustic configs), and saves it in every checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from asrkit.config import ConfigError

LM_KINDS = ("lstm", "transformer")


@dataclass(frozen=True)
class LMConfig:
    kind: str = "lstm"  # "lstm" or "transformer"
    embed_dim: int = 256  # token embedding (the LSTM input; the Transformer's width is `hidden`)
    hidden: int = 512  # LSTM state size, or the Transformer's model width
    layers: int = 2  # LSTM layers or Transformer blocks
    heads: int = 4  # Transformer only
    ff_mult: int = 4  # Transformer only: feed-forward width multiple
    dropout: float = 0.2  # dropout on embeddings and between layers
    tie_embeddings: bool = False  # share input embedding and output projection (needs
    # embed_dim == hidden for the LSTM)

    def __post_init__(self) -> None:
        if self.kind not in LM_KINDS:
            raise ConfigError(f"model.kind must be one of {', '.join(LM_KINDS)}, got {self.kind!r}")
        if min(self.embed_dim, self.hidden, self.layers) < 1:
            raise ConfigError("model.embed_dim, model.hidden and model.layers must be >= 1")
        if self.kind == "transformer" and self.hidden % self.heads:
            raise ConfigError(f"model.hidden {self.hidden} is not divisible by {self.heads} heads")
        if self.kind == "transformer" and (self.hidden // self.heads) % 2:
            raise ConfigError("model.hidden / model.heads must be even (rotary positions)")
        if self.tie_embeddings and self.kind == "lstm" and self.embed_dim != self.hidden:
            raise ConfigError("model.tie_embeddings needs model.embed_dim == model.hidden")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class LMTrainConfig:
    max_epochs: int = 30  # passes over the training text
    max_minutes: float = 0.0  # wall-clock budget for the training steps; 0 = none
    max_tokens: int = 16000  # padded tokens per batch (sentences are grouped by length)
    lr: float = 2e-3  # peak learning rate (AdamW)
    weight_decay: float = 0.0  # AdamW weight decay
    warmup_steps: int = 200  # linear warm-up, then the rate falls as 1/sqrt(step)
    grad_clip: float = 1.0  # max global gradient norm
    dev_fraction: float = 0.02  # held-out share of the text when no --valid is given
    max_sentence_tokens: int = 400  # longer sentences are cut (tokens)
    patience: int = 3  # stop after this many epochs without a better dev perplexity; 0 = never
    seed: int = 0  # seeds init, the dev split and batching

    def __post_init__(self) -> None:
        if self.max_tokens < 16:
            raise ConfigError(f"train.max_tokens must be at least 16, got {self.max_tokens}")
        if not 0.0 < self.dev_fraction < 0.5:
            raise ConfigError(f"train.dev_fraction must be in (0, 0.5), got {self.dev_fraction}")
        if self.lr <= 0 or self.max_epochs < 1:
            raise ConfigError("train.lr must be positive and train.max_epochs at least 1")


@dataclass(frozen=True)
class LMExperimentConfig:
    model: LMConfig = field(default_factory=LMConfig)
    train: LMTrainConfig = field(default_factory=LMTrainConfig)
