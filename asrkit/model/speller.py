"""The LAS speller: an LSTM decoder with input feeding that receives any `Attention`.

Ordering (Luong / LAS, see ../shared/docs/attention.md §1.3), per output step i:

    s_i = LSTM(s_{i-1}, [emb(y_{i-1}); c_{i-1}])      # input feeding of the previous context
    c_i, alpha_i = attention.step(s_i, mem, state)      # query is the new decoder state
    logits_i = W_o tanh(W_c [s_i; c_i])

Without input feeding (`speller.input_feeding: false`, Luong et al. 2015 §3.1 without §3.3)
the LSTM reads only emb(y_{i-1}), so a teacher-forced pass gets every query from one fused
`torch.lstm` over all U+1 inputs. A stateless attention (content only: dot, general,
multihead) then needs no step loop at all: one call over U+1 query rows per item (the rows of
a group share the item's frames, as beams do) gives every context; other kinds loop over
their attention steps only.

The speller does not know which attention kind it holds: it passes `mode` through and keeps
the attention state in its own state dict under `att.<name>` keys, so beam search reorders
everything with one `reorder_state`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from asrkit.model.attention.base import AttendMemory, Attention, AttentionOutput, Mode, State
from asrkit.model.deferred_lstm import DeferredLSTMCells

ATT_PREFIX = "att."


@dataclass(frozen=True)
class AttentionWindow:
    """Decoding-time constraint of an attention over all frames: a step may read only frames
    [peak - behind, peak + ahead] around the previous step's peak (the first step reads all).

    A content-only attention (dot, multihead) has no notion of where it read last: once
    trained it follows the diagonal in teacher forcing, but in free decoding it may jump back
    to an earlier frame that sounds like the current one and repeat a stretch. The window
    (Chorowski et al. 2015 §2.3 "windowing"; ESPnet's attention constraint in TTS) keeps the
    alignment moving forward. Applies to kinds that mask with `AttendMemory.mask` (the global
    family); local and monotonic kinds keep their own windows.

    Attributes:
        behind: frames before the previous peak that may still be read (peaks jitter).
        ahead: frames after it (a pause between words spans tens of frames).
    """

    behind: int
    ahead: int

    def restrict(self, mem: AttendMemory, peaks: Tensor) -> AttendMemory:
        """The memory with frames outside each row's window masked; peaks (B * G,) long."""
        frames = torch.arange(mem.mask.shape[1], device=peaks.device).unsqueeze(0)
        offset = frames - peaks.unsqueeze(1)  # (B * G, T)
        band = (offset >= -self.behind) & (offset <= self.ahead)
        return replace(mem, mask=mem.mask & band)


@dataclass(frozen=True)
class SpellerStep:
    """One decoder step.

    Attributes:
        logits: (B, V) unnormalised scores of the next token.
        weights: (B, T') attention weights used at this step.
        state: the state to pass to the next step.
        log_prob: (B,) hard attention in training only, else None.
        entropy: (B,) hard attention in training only, else None.
    """

    logits: Tensor
    weights: Tensor
    state: State
    log_prob: Tensor | None = None
    entropy: Tensor | None = None


@dataclass
class SpellerOutput:
    """A whole teacher-forced (or scheduled-sampling) pass.

    Attributes:
        logits: (B, U+1, V); the last valid step predicts <eos>.
        weights: (B, U+1, T') attention weights actually used.
        log_prob_sum: (B,) sum of hard-attention log-probabilities (zeros for other kinds).
        entropy_sum: (B,) sum of hard-attention entropies (zeros for other kinds).
        head_weights: (B, H, U+1, T') every head's weights when the decoder's alignment comes
            from a multi-head attention of the Transformer decoder, else None.
    """

    logits: Tensor
    weights: Tensor
    log_prob_sum: Tensor
    entropy_sum: Tensor
    head_weights: Tensor | None = None


class Speller(nn.Module):
    """Attention-based LSTM decoder.

    Args:
        vocab_size: V, including the reserved ids (0 blank/pad, 1 eos/sos, 2 unk).
        embed_dim: token embedding size.
        hidden: LSTM size (the attention query size).
        layers: stacked LSTM cells.
        memory_dim: encoder output size (the context size).
        attention: the mechanism; built with `query_dim=hidden, memory_dim=memory_dim`.
        dropout: on the embedding and on the pre-output layer.
        input_feeding: feed the previous context into the LSTM (LAS); without it a
            teacher-forced pass runs the LSTM over all steps at once (`_all_steps`).
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int,
        hidden: int,
        layers: int,
        memory_dim: int,
        attention: Attention,
        dropout: float = 0.0,
        input_feeding: bool = True,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim)
        first_input = embed_dim + memory_dim if input_feeding else embed_dim
        self.cells = nn.ModuleList(
            nn.LSTMCell(first_input if i == 0 else hidden, hidden) for i in range(layers)
        )
        self.input_feeding = input_feeding
        self.attention = attention
        self.pre_output = nn.Linear(hidden + memory_dim, hidden)
        self.output = nn.Linear(hidden, vocab_size)
        self.dropout = nn.Dropout(dropout)
        self.hidden = hidden
        self.memory_dim = memory_dim

    def prepare(self, memory: Tensor, lengths: Tensor) -> AttendMemory:
        """The attention's memory of encoder output (B, T, D), lengths (B,)."""
        return self.attention.prepare(memory, lengths)

    def auxiliary_loss(self, log_prob_sum: Tensor, entropy_sum: Tensor, reward: Tensor) -> Tensor:
        """The attention's extra training loss (REINFORCE of stochastic hard attention)."""
        return self.attention.auxiliary_loss(log_prob_sum, entropy_sum, reward)

    def initial_state(self, mem: AttendMemory) -> State:
        """Zero LSTM states, a zero previous context (with input feeding) and the attention's
        initial state."""
        batch = mem.lengths.shape[0]  # query rows (beams share an item's frames)
        zeros = mem.values.new_zeros(batch, self.hidden)
        state: State = {}
        if self.input_feeding:
            state["context"] = mem.values.new_zeros(batch, self.memory_dim)
        for i in range(len(self.cells)):
            state[f"h{i}"], state[f"c{i}"] = zeros, zeros
        for key, value in self.attention.initial_state(mem).items():
            state[ATT_PREFIX + key] = value
        return state

    def step(
        self,
        prev_tokens: Tensor,
        state: State,
        mem: AttendMemory,
        mode: Mode,
        window: AttentionWindow | None = None,
    ) -> SpellerStep:
        """One output step.

        Args:
            prev_tokens: (B,) long, the previous token (EOS_ID as <sos> at the first step).
            state: from `initial_state` or the previous step.
            mem: from `attention.prepare`.
            mode: "train" or "eval", passed to the attention.
            window: decoding only: read near the previous step's peak, which the state then
                carries under "peak" (reordered with the rest by beam search).

        Returns:
            SpellerStep with logits (B, V) and weights (B, T').
        """
        inputs = self.dropout(self.embed(prev_tokens))  # (B, E)
        if window is not None and "peak" in state:
            mem = window.restrict(mem, state["peak"])
        query, att, new_state = self._recur(inputs, state, mem, mode)
        if window is not None:
            new_state["peak"] = att.weights.argmax(dim=1)
        logits = self._project(torch.cat([query, att.context], dim=-1))
        return SpellerStep(logits, att.weights, new_state, att.log_prob, att.entropy)

    def _recur(
        self,
        inputs: Tensor,
        state: State,
        mem: AttendMemory,
        mode: Mode,
        deferred: DeferredLSTMCells | None = None,
    ) -> tuple[Tensor, AttentionOutput, State]:
        """LSTM update (with input feeding when on), then attention: -> (query s_i, attention,
        state).
        `deferred`: the same cells with their weight gradients taken once per pass."""
        x = torch.cat([inputs, state["context"]], dim=1) if self.input_feeding else inputs
        new_state: State = {}
        for i, cell in enumerate(self.cells):
            if deferred is not None:
                h, c = deferred.step(i, x, state[f"h{i}"], state[f"c{i}"])
            else:
                h, c = cell(x, (state[f"h{i}"], state[f"c{i}"]))
            new_state[f"h{i}"], new_state[f"c{i}"] = h, c
            x = h
        att_state = {k[len(ATT_PREFIX) :]: v for k, v in state.items() if k.startswith(ATT_PREFIX)}
        att = self.attention.step(x, mem, att_state, mode)
        if self.input_feeding:
            new_state["context"] = att.context
        for key, value in att.state.items():
            new_state[ATT_PREFIX + key] = value
        return x, att, new_state

    def _project(self, query_context: Tensor) -> Tensor:
        """[s_i; c_i] (..., H + D) -> logits (..., V)."""
        return self.output(self.dropout(torch.tanh(self.pre_output(query_context))))

    def forward(
        self,
        mem: AttendMemory,
        tokens_in: Tensor,
        mode: Mode,
        sampling_prob: float = 0.0,
        steps_mask: Tensor | None = None,
    ) -> SpellerOutput:
        """Run all U+1 steps with teacher forcing (optionally scheduled sampling).

        Args:
            mem: from `attention.prepare`, batch B.
            tokens_in: (B, U+1) long, EOS_ID (as <sos>) followed by the reference tokens.
            mode: "train" or "eval", passed to the attention.
            sampling_prob: per position and item, the probability of feeding the argmax of the
                previous step instead of the reference (Bengio et al. 2015); the choice carries
                no gradient.
            steps_mask: (B, U+1) bool, True on valid output steps; only used to mask the
                hard-attention sums (all steps count when None).

        Returns:
            SpellerOutput with logits (B, U+1, V) and weights (B, U+1, T').
        """
        batch, steps = tokens_in.shape
        # Embeddings of the reference inputs in one call; the output layers run once over all
        # steps after the loop unless scheduled sampling needs each step's argmax right away.
        embedded = self.dropout(self.embed(tokens_in))  # (B, U+1, E)
        if not self.input_feeding and sampling_prob == 0.0:
            return self._all_steps(mem, embedded, mode, steps_mask)
        state = self.initial_state(mem)
        deferred = DeferredLSTMCells(self.cells) if DeferredLSTMCells.wanted(self.cells) else None
        outputs, logits, weights = [], [], []
        log_prob_sum = mem.values.new_zeros(batch)
        entropy_sum = mem.values.new_zeros(batch)
        for i in range(steps):
            inputs = embedded[:, i]
            if sampling_prob > 0.0 and i > 0:
                sampled = torch.rand(batch, device=tokens_in.device) < sampling_prob
                predicted = self.dropout(self.embed(logits[-1].detach().argmax(dim=1)))
                inputs = torch.where(sampled.unsqueeze(1), predicted, inputs)
            query, att, state = self._recur(inputs, state, mem, mode, deferred)
            outputs.append(torch.cat([query, att.context], dim=1))  # (B, H + D)
            weights.append(att.weights)
            if sampling_prob > 0.0:
                logits.append(self._project(outputs[-1]))
            log_prob_sum, entropy_sum = _add_hard_terms(
                log_prob_sum, entropy_sum, att, steps_mask, i
            )
        if sampling_prob > 0.0:
            all_logits = torch.stack(logits, dim=1)
        else:
            all_logits = self._project(torch.stack(outputs, dim=1))  # (B, U+1, V)
        return SpellerOutput(
            logits=all_logits,
            weights=torch.stack(weights, dim=1),  # (B, U+1, T')
            log_prob_sum=log_prob_sum,
            entropy_sum=entropy_sum,
        )

    def _all_steps(
        self, mem: AttendMemory, embedded: Tensor, mode: Mode, steps_mask: Tensor | None
    ) -> SpellerOutput:
        """Teacher-forced pass without input feeding: every query from one fused LSTM call,
        then every attention step in one call (stateless kinds) or a loop of attention steps
        only (kinds whose state carries the previous alignment).
        embedded (B, U+1, E) -> logits (B, U+1, V), weights (B, U+1, T')."""
        batch, steps, _ = embedded.shape
        queries = self._queries(embedded)  # (B, U+1, H)
        log_prob_sum = mem.values.new_zeros(batch)
        entropy_sum = mem.values.new_zeros(batch)
        if self.attention.stateless:
            att = self.attention.step(queries.flatten(0, 1), mem.shared(steps), {}, mode)
            contexts = att.context.view(batch, steps, -1)  # (B, U+1, D)
            weights = att.weights.view(batch, steps, -1)
        else:
            state = self.attention.initial_state(mem)
            context_list, weight_list = [], []
            for i in range(steps):
                att = self.attention.step(queries[:, i], mem, state, mode)
                state = att.state
                context_list.append(att.context)
                weight_list.append(att.weights)
                log_prob_sum, entropy_sum = _add_hard_terms(
                    log_prob_sum, entropy_sum, att, steps_mask, i
                )
            contexts, weights = torch.stack(context_list, dim=1), torch.stack(weight_list, dim=1)
        return SpellerOutput(
            logits=self._project(torch.cat([queries, contexts], dim=-1)),
            weights=weights,
            log_prob_sum=log_prob_sum,
            entropy_sum=entropy_sum,
        )

    def _queries(self, embedded: Tensor) -> Tensor:
        """The cells run over all inputs at once (no input feeding): (B, U+1, E) -> (B, U+1, H)."""
        zeros = embedded.new_zeros(len(self.cells), embedded.shape[0], self.hidden)
        weights = [w for c in self.cells for w in (c.weight_ih, c.weight_hh, c.bias_ih, c.bias_hh)]
        queries, *_ = torch.lstm(  # the kernel of nn.LSTM, on the cells' own parameters
            embedded,
            (zeros, zeros),
            weights,
            has_biases=True,
            num_layers=len(self.cells),
            dropout=0.0,  # the cells' stack has none between layers either
            train=self.training,
            bidirectional=False,
            batch_first=True,
        )
        return queries


def _add_hard_terms(
    log_prob_sum: Tensor,
    entropy_sum: Tensor,
    att: AttentionOutput,
    steps_mask: Tensor | None,
    step: int,
) -> tuple[Tensor, Tensor]:
    """The (B,) hard-attention sums with step `step`'s log-probability and entropy added,
    counted only where `steps_mask` (B, U+1) marks the step valid (all steps when None);
    soft kinds return neither, so the sums stay as they are."""
    valid = steps_mask[:, step].to(log_prob_sum.dtype) if steps_mask is not None else 1.0
    if att.log_prob is not None:
        log_prob_sum = log_prob_sum + att.log_prob * valid
    if att.entropy is not None:
        entropy_sum = entropy_sum + att.entropy * valid
    return log_prob_sum, entropy_sum
