"""Listen, Attend and Spell with pluggable attention and an optional joint CTC head.

`LAS(cfg, vocab_size)` is the only module that reads a config; it wires a listener (pyramidal
BiLSTM, Transformer or Conformer), a decoder holding the attention built from the registry (the
LSTM `Speller`, or a `TransformerDecoder` whose blocks each hold a cross-attention), and a CTC
output layer on the listener (Kim et al. 2017, joint CTC-attention), optionally also read at
intermediate encoder blocks (intermediate CTC, Lee & Watanabe 2021).

Global CMVN statistics are buffers of the model, so a checkpoint is self-contained and
`encode()` takes raw log-mel features.

Example:
    >>> from asrkit.testing import tiny_model, dummy_batch
    >>> model = tiny_model("dot")
    >>> loss, stats = model(dummy_batch())
    >>> sorted(stats)[:3]
    ['acc', 'att_loss', 'aux_loss']
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from asrkit.config import ConfigError, ExperimentConfig
from asrkit.model.attention import (
    build_attention,
    build_cross_attention,
    resolve_cross_kind,
    resolve_kind,
)
from asrkit.model.attention.base import valid_mask
from asrkit.model.encoders import SelfAttentionEncoder
from asrkit.model.listener import PyramidalListener
from asrkit.model.speller import Speller, SpellerOutput
from asrkit.model.transformer_decoder import TransformerDecoder
from asrkit.tokenizer import EOS_ID

IGNORE = -100  # target value of padded output steps (F.cross_entropy's ignore_index)

__all__ = ["LAS", "Batch", "SpellerOutput", "attention_kind_of", "build_listener"]


@dataclass
class Batch:
    """A padded training batch (built by the collate function).

    Attributes:
        feats: (B, T, n_mels) float32 raw log-mel features (normalised inside the model).
        feat_lengths: (B,) long.
        tokens: (B, U) long, padded with 0 (BLANK_ID), without <eos>.
        token_lengths: (B,) long.
        ids: utterance ids, in batch order.
    """

    feats: Tensor
    feat_lengths: Tensor
    tokens: Tensor
    token_lengths: Tensor
    ids: list[str]

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            self.feats.to(device),
            self.feat_lengths.to(device),
            self.tokens.to(device),
            self.token_lengths.to(device),
            self.ids,
        )


def build_listener(cfg: ExperimentConfig) -> PyramidalListener | SelfAttentionEncoder:
    """The encoder named by `cfg.listener.kind`; the result has `output_dim` and `subsampling`.

    Raises:
        ConfigError: options that do not fit together (front end and factor, heads and width).
    """
    lc, n_mels = cfg.listener, cfg.features.n_mels
    allowed = (4, 6) if lc.frontend == "conv2d" else (1, 2, 4, 8)
    if lc.conv_subsample not in allowed:
        raise ConfigError(
            f"listener.conv_subsample must be one of {', '.join(map(str, allowed))} with "
            f"listener.frontend {lc.frontend}, got {lc.conv_subsample}"
        )
    if lc.kind == "pblstm":
        if lc.frontend != "conv1d" or lc.inter_ctc_layers:
            raise ConfigError(
                "listener.frontend conv2d and listener.inter_ctc_layers are for the "
                "transformer and conformer listeners"
            )
        return PyramidalListener(
            n_mels,
            lc.hidden,
            lc.layers,
            lc.conv_subsample,
            lc.lstm_before_pyramid,
            lc.dropout,
            streaming=lc.streaming,
        )
    if lc.streaming and (lc.left_context != -1 or lc.right_context != -1 or lc.chunk < 1):
        raise ConfigError(
            "a streaming self-attention listener is masked by listener.chunk (>= 1, got "
            f"{lc.chunk}) and listener.left_chunks; leave listener.left_context and "
            "listener.right_context at -1"
        )
    if lc.kind not in ("transformer", "conformer"):
        raise ConfigError(
            f"listener.kind: unknown listener {lc.kind!r} (valid: pblstm, transformer, conformer)"
        )
    if lc.heads < 1 or lc.hidden % lc.heads:
        raise ConfigError(
            f"listener.hidden ({lc.hidden}) must be a multiple of listener.heads ({lc.heads})"
        )
    bad = [n for n in lc.inter_ctc_layers if not 1 <= n < lc.layers]
    if bad:
        raise ConfigError(
            f"listener.inter_ctc_layers must name blocks 1 .. {lc.layers - 1}, got {bad}"
        )
    return SelfAttentionEncoder(
        n_mels,
        lc.hidden,
        lc.layers,
        lc.heads,
        lc.ff_mult,
        conformer=lc.kind == "conformer",
        conv_subsample=lc.conv_subsample,
        left_context=lc.left_context,
        right_context=lc.right_context,
        dropout=lc.dropout,
        frontend=lc.frontend,
        conv_channels=lc.conv_channels,
        positions=lc.positions,
        kernel=lc.kernel,
        chunk=lc.chunk if lc.streaming else 0,
        left_chunks=lc.left_chunks,
    )


def attention_kind_of(cfg: ExperimentConfig) -> str:
    """The registry name of the model's attention: a family name resolved for its decoder
    (`global` is location-aware attention for the LSTM speller, multihead for the Transformer).

    Raises:
        UserError: a kind that does not exist, or that the decoder does not run.
    """
    if cfg.decoder.kind == "transformer":
        return resolve_cross_kind(cfg.attention.kind)
    return resolve_kind(cfg.attention.kind)


def build_decoder(
    cfg: ExperimentConfig, vocab_size: int, memory_dim: int
) -> Speller | TransformerDecoder:
    """The decoder `cfg.decoder.kind` names, holding the attention `cfg.attention` names.

    Raises:
        ConfigError: the decoder's width and heads do not fit.
        UserError: an attention kind the decoder does not run.
    """
    if cfg.decoder.kind == "lstm":
        sc = cfg.speller
        attention = build_attention(cfg.attention, sc.hidden, memory_dim)
        return Speller(
            vocab_size,
            sc.embed_dim,
            sc.hidden,
            sc.layers,
            memory_dim,
            attention,
            sc.dropout,
            sc.input_feeding,
        )
    dc = cfg.decoder
    resolve_cross_kind(cfg.attention.kind)  # name the supported kinds before anything else
    if dc.dim % dc.heads:
        raise ConfigError(
            f"decoder.dim ({dc.dim}) must be a multiple of decoder.heads ({dc.heads})"
        )
    if not -dc.layers <= dc.alignment_layer < dc.layers:
        raise ConfigError(
            f"decoder.alignment_layer must index one of the {dc.layers} decoder blocks, "
            f"got {dc.alignment_layer}"
        )
    return TransformerDecoder(
        vocab_size,
        dc.dim,
        dc.layers,
        dc.heads,
        dc.ff_mult,
        memory_dim,
        lambda: build_cross_attention(cfg.attention, dc.dim),
        dc.dropout,
        dc.alignment_layer,
        dc.positions,
    )


def subtract_utterance_mean(feats: Tensor, lengths: Tensor) -> Tensor:
    """(B, T, F), (B,) -> each item minus its own per-bin mean over its valid frames.

    Padding does not enter the mean, so a padded item gets the same values as alone.
    """
    valid = valid_mask(lengths, feats.shape[1]).unsqueeze(-1)  # (B, T, 1)
    total = (feats * valid).sum(dim=1, keepdim=True)
    mean = total / lengths.clamp_min(1).to(feats.dtype)[:, None, None]
    return feats - mean


def guided_attention_loss(
    weights: Tensor, step_mask: Tensor, enc_lengths: Tensor, sigma: float
) -> Tensor:
    """Mean attention mass off the diagonal band (Tachibana et al. 2018, guided attention).

    Step u of U attends frame t of T at cost 1 - exp(-((t + 0.5)/T - (u + 0.5)/U)^2 / 2 sigma^2).
    Mass a step puts on no frame at all (monotonic attention's weights may sum to less than 1)
    costs 1: otherwise monotonic attention learns to attend nowhere, which costs nothing.

    Args:
        weights: (B, U, T') attention weights of the teacher-forced steps.
        step_mask: (B, U) True on real output steps (eos included).
        enc_lengths: (B,) valid encoder frames.
        sigma: band width as a share of the utterance.

    Returns:
        Scalar in [0, 1): expected cost per output step.
    """
    steps = step_mask.sum(dim=1).clamp_min(1).float()  # (B,)
    step_pos = (torch.arange(weights.shape[1], device=weights.device) + 0.5) / steps[:, None]
    frame_pos = (torch.arange(weights.shape[2], device=weights.device) + 0.5) / enc_lengths[
        :, None
    ].clamp_min(1)
    distance = frame_pos[:, None, :] - step_pos[:, :, None]  # (B, U, T')
    cost = 1.0 - torch.exp(-(distance**2) / (2 * sigma**2))
    weights = weights.float()
    missing = (1.0 - weights.sum(dim=2)).clamp_min(0.0)  # (B, U)
    per_step = (weights * cost).sum(dim=2) + missing  # (B, U)
    return (per_step * step_mask).sum() / step_mask.sum().clamp_min(1)


class LAS(nn.Module):
    """Listener + attention speller + optional CTC head.

    Args:
        cfg: the experiment config (features, listener, attention, speller, model sections).
        vocab_size: V of the tokenizer.

    Attributes:
        subsampling: total time reduction; one encoder frame = subsampling * 10 ms.
        attention_kind: the registry name of the attention (a family name resolved).
        alignment_source: which weights the decoder's alignment is, in words ("decoder block
            4 of 4, mean of 4 heads"); empty for the LSTM speller's single attention.
        speller: the decoder (LSTM speller or Transformer decoder); `speller.attention` is the
            attention mechanism its alignment comes from.
        ctc: Linear(H, V) on the listener output, None when `model.ctc_weight == 0`.
    """

    def __init__(self, cfg: ExperimentConfig, vocab_size: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.ctc_weight = cfg.model.ctc_weight
        self.label_smoothing = cfg.model.label_smoothing
        self.utterance_cmn = cfg.model.utterance_cmn
        self.guide_sigma = cfg.model.guide_sigma
        self.listener = build_listener(cfg)
        self.subsampling: int = self.listener.subsampling
        memory_dim = self.listener.output_dim
        self.inter_ctc_layers = cfg.listener.inter_ctc_layers
        self.inter_ctc_weight = cfg.model.inter_ctc_weight if self.inter_ctc_layers else 0.0
        self.attention_kind = attention_kind_of(cfg)  # the registry name, e.g. "location"
        self.speller = build_decoder(cfg, vocab_size, memory_dim)  # LSTM or Transformer
        # Which weights the decoder's alignment is (plot titles); the LSTM has one attention.
        self.alignment_source: str = getattr(self.speller, "alignment_source", "")
        self.ctc = nn.Linear(memory_dim, vocab_size) if self.ctc_weight > 0 else None
        n_mels = cfg.features.n_mels
        self.register_buffer("feat_mean", torch.zeros(n_mels))
        self.register_buffer("feat_std", torch.ones(n_mels))

    def set_cmvn(self, mean: Tensor, std: Tensor) -> None:
        """Store global CMVN statistics, each (n_mels,)."""
        self.feat_mean.copy_(torch.as_tensor(mean, dtype=self.feat_mean.dtype))
        self.feat_std.copy_(torch.as_tensor(std, dtype=self.feat_std.dtype).clamp_min(1e-5))

    def normalise(self, feats: Tensor, feat_lengths: Tensor) -> Tensor:
        """Raw log-mel (B, T, n_mels) -> CMVN (and utterance CMN when on) features."""
        feats = (feats - self.feat_mean) / self.feat_std  # padding is re-zeroed by the listener
        if self.utterance_cmn:
            feats = subtract_utterance_mean(feats, feat_lengths)
        return feats

    def encode(self, feats: Tensor, feat_lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Raw log-mel (B, T, n_mels), (B,) -> encoder output (B, T', H), lengths (B,)."""
        return self.listener(self.normalise(feats, feat_lengths), feat_lengths)

    def ctc_log_probs(self, enc: Tensor) -> Tensor | None:
        """Encoder output (B, T', H) -> CTC log-probabilities (B, T', V) in float32, or None."""
        if self.ctc is None:
            return None
        return F.log_softmax(self.ctc(enc).float(), dim=-1)

    def forward(
        self, batch: Batch, sampling_prob: float = 0.0, guide_weight: float = 0.0
    ) -> tuple[Tensor, dict[str, float]]:
        """Training loss of a batch.

        loss = (1 - w) * (label-smoothed CE + attention auxiliary loss) + w * CTC
        + guide_weight * guided-attention loss, with w = `model.ctc_weight`. The CE is
        averaged over all output tokens of the batch (eos included); the CTC term is
        `F.ctc_loss(reduction="mean")`: each utterance's loss divided by its target length,
        averaged over the batch, so both terms are per token.

        Returns:
            (scalar loss, stats) with stats loss, att_loss, aux_loss, ctc_loss, guide_loss,
            acc (token accuracy incl. eos), tokens (count incl. eos) and frames (input frames).
        """
        enc, enc_lengths, intermediates = self._encode_for_training(batch)
        tokens_in, targets = decoder_io(batch.tokens, batch.token_lengths)
        valid = targets != IGNORE  # (B, U+1)
        mem = self.speller.prepare(enc, enc_lengths)
        out = self.speller(mem, tokens_in, "train", sampling_prob, steps_mask=valid)

        log_probs = F.log_softmax(out.logits.float(), dim=-1)  # (B, U+1, V)
        nll = -log_probs.gather(2, targets.clamp_min(0).unsqueeze(2)).squeeze(2)  # (B, U+1)
        smooth = -log_probs.mean(dim=-1)  # cross-entropy against the uniform distribution
        per_token = (1 - self.label_smoothing) * nll + self.label_smoothing * smooth
        num_tokens = valid.sum()
        ce = (per_token * valid).sum() / num_tokens.clamp_min(1)
        # REINFORCE reward of hard attention: the reference log-likelihood of each utterance.
        reward = -(nll * valid).sum(dim=1).detach()
        aux = self.speller.auxiliary_loss(out.log_prob_sum, out.entropy_sum, reward)
        att_loss = ce + aux
        loss = (1 - self.ctc_weight) * att_loss

        ctc_loss = ce.new_zeros(())
        if self.ctc is not None:
            ctc_loss = self._ctc_loss(enc, enc_lengths, intermediates, batch)
            loss = loss + self.ctc_weight * ctc_loss
        guide = ce.new_zeros(())
        if guide_weight > 0:
            guide = guided_attention_loss(out.weights, valid, enc_lengths, self.guide_sigma)
            loss = loss + guide_weight * guide

        correct = ((log_probs.argmax(dim=-1) == targets) & valid).sum()
        losses = [loss, ce, aux, ctc_loss, guide]
        values = torch.stack([*(x.detach() for x in losses), correct, num_tokens]).tolist()
        stats = {
            "loss": values[0],
            "att_loss": values[1],
            "aux_loss": values[2],
            "ctc_loss": values[3],
            "guide_loss": values[4],
            "acc": values[5] / max(values[6], 1.0),
            "tokens": values[6],
            "frames": float(batch.feat_lengths.sum()),
        }
        return loss, stats

    def _encode_for_training(self, batch: Batch) -> tuple[Tensor, Tensor, list[Tensor]]:
        """`encode`, plus the intermediate encoder outputs intermediate CTC reads."""
        if not self.inter_ctc_weight or self.ctc is None:
            return (*self.encode(batch.feats, batch.feat_lengths), [])
        assert isinstance(self.listener, SelfAttentionEncoder)
        feats = self.normalise(batch.feats, batch.feat_lengths)
        return self.listener.forward_with_intermediates(
            feats, batch.feat_lengths, self.inter_ctc_layers
        )

    def _ctc_loss(
        self, enc: Tensor, enc_lengths: Tensor, intermediates: list[Tensor], batch: Batch
    ) -> Tensor:
        """CTC of the final encoder output, mixed with the intermediate outputs' mean CTC:
        (1 - w) * final + w * mean(intermediate), w = `model.inter_ctc_weight`."""
        losses = []
        for output in [enc, *intermediates]:
            log_probs = self.ctc_log_probs(output)
            assert log_probs is not None
            losses.append(
                F.ctc_loss(
                    log_probs.transpose(0, 1),  # (T', B, V)
                    batch.tokens,
                    enc_lengths,
                    batch.token_lengths,
                    blank=0,
                    reduction="mean",
                    zero_infinity=True,  # an utterance shorter than its transcript adds 0
                )
            )
        if not intermediates:
            return losses[0]
        inter = torch.stack(losses[1:]).mean()
        return (1 - self.inter_ctc_weight) * losses[0] + self.inter_ctc_weight * inter

    @torch.no_grad()
    def teacher_forced(self, batch: Batch) -> SpellerOutput:
        """Reference-fed decoder pass in eval mode (no dropout, attention mode "eval").

        Returns:
            SpellerOutput: logits (B, U+1, V), weights (B, U+1, T') for plots and dev loss.
        """
        was_training = self.training
        self.eval()
        try:
            enc, enc_lengths = self.encode(batch.feats, batch.feat_lengths)
            tokens_in, targets = decoder_io(batch.tokens, batch.token_lengths)
            mem = self.speller.prepare(enc, enc_lengths)
            return self.speller(mem, tokens_in, "eval", steps_mask=targets != IGNORE)
        finally:
            self.train(was_training)


def decoder_io(tokens: Tensor, token_lengths: Tensor) -> tuple[Tensor, Tensor]:
    """Decoder inputs and targets from padded references.

    Args:
        tokens: (B, U) long, padded with 0, without eos.
        token_lengths: (B,) long.

    Returns:
        tokens_in: (B, U+1) = [<sos>=EOS_ID, y_1 .. y_U].
        targets: (B, U+1) = [y_1 .. y_L, <eos>, IGNORE ...].
    """
    batch, length = tokens.shape
    steps = torch.arange(length + 1, device=tokens.device).unsqueeze(0)  # (1, U+1)
    sos = tokens.new_full((batch, 1), EOS_ID)
    tokens_in = torch.cat([sos, tokens], dim=1)
    targets = torch.cat([tokens, tokens.new_zeros(batch, 1)], dim=1)
    targets = targets.masked_fill(steps == token_lengths.unsqueeze(1), EOS_ID)
    return tokens_in, targets.masked_fill(steps > token_lengths.unsqueeze(1), IGNORE)
