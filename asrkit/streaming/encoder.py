"""A streaming listener run chunk by chunk, equal to running it on the whole input.

`PyramidalListener(streaming=True)` is conv front end -> left-to-right LSTM -> pyramid levels
(pair frames, LSTM). Each stage here keeps what it needs between chunks: a stride-2 convolution
(kernel 3, padding 1) emits output k once input 2k + 1 is in (one frame of look-ahead) and pads
with a zero frame at the end; an LSTM carries its (h, c); a pyramid level holds an odd frame
until its partner comes (or pairs it with a zero frame at the end). Every stage returns the
frames that became final, so `feed` and `finish` together give the offline listener's output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from asrkit.model.listener import ConvSubsampling, PyramidalListener, UniLSTM


class ConvStage:
    """One stride-2, kernel-3, padding-1 convolution + ReLU over incoming frames (T, C)."""

    def __init__(self, conv: nn.Conv1d) -> None:
        self.conv = conv
        self.frames = torch.zeros(0, conv.in_channels)  # inputs from 2 * emitted - 1 on
        self.first = True  # output 0 reads the zero frame before the input

    def push(self, x: Tensor, final: bool = False) -> Tensor:
        frames = torch.cat([self.frames, x]) if x.numel() else self.frames
        if self.first and frames.shape[0]:
            frames = torch.cat([frames.new_zeros(1, frames.shape[1]), frames])
            self.first = False
        if final and frames.shape[0] % 2 == 0 and frames.shape[0]:
            frames = torch.cat([frames, frames.new_zeros(1, frames.shape[1])])
        count = (frames.shape[0] - 1) // 2  # outputs whose three inputs are all here
        if count <= 0:
            self.frames = frames
            return x.new_zeros(0, self.conv.out_channels)
        used = frames[: 2 * count + 1].transpose(0, 1).unsqueeze(0)  # (1, C, 2 count + 1)
        y = torch.relu(F.conv1d(used, self.conv.weight, self.conv.bias, stride=2))
        self.frames = frames[2 * count :]  # the last input read is the next output's first
        return y.squeeze(0).transpose(0, 1)


class LSTMStage:
    """A left-to-right LSTM with its state carried from chunk to chunk."""

    def __init__(self, lstm: nn.LSTM) -> None:
        self.lstm = lstm
        self.state: tuple[Tensor, Tensor] | None = None

    def push(self, x: Tensor, final: bool = False) -> Tensor:
        if x.shape[0] == 0:
            return x.new_zeros(0, self.lstm.hidden_size)
        y, self.state = self.lstm(x.unsqueeze(0), self.state)
        return y.squeeze(0)


class PairStage:
    """A pyramid level's frame pairing: (T, D) -> (T / 2, 2D)."""

    def __init__(self) -> None:
        self.odd: Tensor | None = None

    def push(self, x: Tensor, final: bool = False) -> Tensor:
        if self.odd is not None:
            x = torch.cat([self.odd, x]) if x.numel() else self.odd
            self.odd = None
        if final and x.shape[0] % 2:
            x = torch.cat([x, x.new_zeros(1, x.shape[1])])
        elif x.shape[0] % 2:
            x, self.odd = x[:-1], x[-1:]
        return x.reshape(x.shape[0] // 2, 2 * x.shape[1])


Stage = ConvStage | LSTMStage | PairStage


def stages_of(listener: PyramidalListener) -> list[Stage]:
    """The listener's layers as incremental stages, in order."""
    if not listener.streaming:
        raise ValueError("a bidirectional listener cannot run incrementally")
    stages: list[Stage] = []
    if isinstance(listener.conv, ConvSubsampling):
        stages += [ConvStage(conv) for conv in listener.conv.convs]
    if isinstance(listener.first, UniLSTM):
        stages.append(LSTMStage(listener.first.lstm))
    for level in listener.levels:
        assert isinstance(level, UniLSTM)
        stages += [PairStage(), LSTMStage(level.lstm)]
    return stages


class IncrementalListener:
    """Normalised features in, final encoder frames out, for one utterance.

    Args:
        listener: a streaming `PyramidalListener` in eval mode (dropout off).
    """

    def __init__(self, listener: PyramidalListener) -> None:
        self.stages = stages_of(listener)
        self.output_dim = listener.output_dim

    @torch.no_grad()
    def feed(self, feats: Tensor) -> Tensor:
        """(T, D) normalised features -> (T', output_dim) encoder frames now final."""
        return self._run(feats, final=False)

    @torch.no_grad()
    def finish(self) -> Tensor:
        """The encoder frames that waited for the end of the input."""
        return self._run(torch.zeros(0, 0), final=True)

    def _run(self, x: Tensor, final: bool) -> Tensor:
        for stage in self.stages:
            x = stage.push(x, final)
        return x if x.numel() else torch.zeros(0, self.output_dim)
