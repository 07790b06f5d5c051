"""Listeners: the pyramidal BiLSTM of LAS and a strided-convolution front end.

Every module takes `(x (B, T, D), lengths (B,))` and returns `(y (B, T', D'), y_lengths (B,))`.
Outputs are exactly zero on padded frames, and every valid output depends only on the valid
input frames of its own utterance, so a padded batch gives the same numbers as each utterance
run alone (tested).

References: Chan et al. 2016, "Listen, Attend and Spell" (pyramidal BiLSTM, §3.1).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from asrkit.model.attention.base import valid_mask


def reverse_padded(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each sequence within its own length; padding stays at the end.

    Args:
        x: (B, T, D).
        lengths: (B,) long.

    Returns:
        (B, T, D) with `y[b, t] = x[b, L_b - 1 - t]` for t < L_b and `y[b, t] = x[b, t]` after.
    """
    steps = torch.arange(x.shape[1], device=x.device).unsqueeze(0)  # (1, T)
    last = lengths.unsqueeze(1) - 1  # (B, 1)
    index = torch.where(steps <= last, last - steps, steps)  # (B, T)
    return x[torch.arange(x.shape[0], device=x.device).unsqueeze(1), index]  # see gather_frames


class BiLSTM(nn.Module):
    """Bidirectional LSTM on padded tensors, exact for every item of a padded batch.

    The backward direction runs a forward LSTM over each sequence reversed within its length,
    so it never starts on padding. On CPU this is faster than packing (no sort, no per-step
    batch shrinking bookkeeping) and gives identical valid outputs (measured in
    benchmarks/RESULTS.md).

    Args:
        input_dim: D.
        hidden: per-direction size H; the output is (B, T, 2H).
    """

    def __init__(self, input_dim: int, hidden: int) -> None:
        super().__init__()
        self.forward_lstm = nn.LSTM(input_dim, hidden, batch_first=True)
        self.backward_lstm = nn.LSTM(input_dim, hidden, batch_first=True)

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, T, D), lengths (B,) -> (B, T, 2H) zero on padding, lengths."""
        fwd, _ = self.forward_lstm(x)  # (B, T, H)
        bwd, _ = self.backward_lstm(reverse_padded(x, lengths))
        y = torch.cat([fwd, reverse_padded(bwd, lengths)], dim=2)  # (B, T, 2H)
        # The forward direction keeps running over padding: zero it so the next pyramid level
        # (which pairs the last odd frame with a padding frame) sees exactly what an unpadded
        # run sees.
        return y * valid_mask(lengths, x.shape[1]).unsqueeze(2).to(y.dtype), lengths


class UniLSTM(nn.Module):
    """Left-to-right LSTM on padded tensors: output t reads input frames 0..t only, so a
    streaming listener can run it chunk by chunk with its state carried over.

    Args:
        input_dim: D.
        hidden: the LSTM size; the output is (B, T, hidden).
    """

    def __init__(self, input_dim: int, hidden: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_dim, hidden, batch_first=True)

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, T, D), lengths (B,) -> (B, T, hidden) zero on padding, lengths."""
        y, _ = self.lstm(x)
        return y * valid_mask(lengths, x.shape[1]).unsqueeze(2).to(y.dtype), lengths


def pyramid_pairs(x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """Concatenate adjacent frames: (B, T, D) -> (B, ceil(T/2), 2D), L -> ceil(L/2).

    An odd final frame is paired with a zero frame (pad, never drop: the last 10-30 ms of
    speech may hold a whole short token). The caller guarantees zeros on padding.
    """
    batch, steps, dim = x.shape
    # Padding by steps % 2 frames, not `if steps % 2`: no branch on the length, so the
    # function traces and exports (ONNX) for every length.
    x = nn.functional.pad(x, (0, 0, 0, steps % 2))
    return x.reshape(batch, (steps + 1) // 2, 2 * dim), (lengths + 1) // 2


class ConvSubsampling(nn.Module):
    """Strided 1-D convolutions over time: each layer halves T (L -> ceil(L/2)).

    Convolving over time with the mel bins as channels costs a fraction of the usual 2-D front
    end (which convolves over time x frequency) and keeps the CPU budget for the LSTMs.

    Args:
        input_dim: D (n_mels).
        output_dim: channels of every layer and of the output.
        factor: 2, 4 or 8 (one, two or three stride-2 layers).
    """

    def __init__(self, input_dim: int, output_dim: int, factor: int) -> None:
        super().__init__()
        if factor not in (2, 4, 8):
            raise ValueError(f"conv subsampling factor must be 2, 4 or 8, got {factor}")
        dims = [input_dim] + [output_dim] * {2: 1, 4: 2, 8: 3}[factor]
        self.convs = nn.ModuleList(
            nn.Conv1d(dims[i], dims[i + 1], kernel_size=3, stride=2, padding=1)
            for i in range(len(dims) - 1)
        )

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, T, D), lengths (B,) -> (B, T', C) zero on padding, T' = ceil(T / factor)."""
        y = x.transpose(1, 2)  # (B, D, T)
        for conv in self.convs:
            # Zero padding first: the kernel straddles the last valid frame and the first pad.
            y = y * valid_mask(lengths, y.shape[2]).unsqueeze(1).to(y.dtype)
            y = torch.relu(conv(y))  # (B, C, ceil(T/2)), kernel 3 stride 2 pad 1
            lengths = (lengths + 1) // 2
        y = y.transpose(1, 2)  # (B, T', C)
        return y * valid_mask(lengths, y.shape[1]).unsqueeze(2).to(y.dtype), lengths


class Conv2dSubsampling(nn.Module):
    """Two unpadded 2-D convolutions over (time, frequency), ReLU after each, then a linear map
    of channels x remaining bins to `output_dim` (the Conformer/ESPnet front end).

    Factor 4: kernels 3 and 3, strides 2 and 2, so L -> ((L - 1) // 2 - 1) // 2. Factor 6:
    kernels 3 and 5, strides 2 and 3, L -> ((L - 1) // 2 - 2) // 3. Without padding an output
    frame reads only the input frames it covers, so each valid output depends on valid input
    frames alone (batched equals unbatched); an utterance shorter than the receptive field
    (7 or 11 frames) gets 0 frames.

    Args:
        input_dim: D (n_mels).
        output_dim: size of each output frame.
        factor: 4 or 6.
        channels: channels of both convolutions.

    Example:
        >>> front = Conv2dSubsampling(80, 32, factor=4, channels=8)
        >>> y, n = front(torch.zeros(2, 17, 80), torch.tensor([17, 9]))
        >>> tuple(y.shape), n.tolist()
        ((2, 3, 32), [3, 1])
    """

    def __init__(self, input_dim: int, output_dim: int, factor: int, channels: int) -> None:
        super().__init__()
        if factor not in (4, 6):
            raise ValueError(f"conv2d subsampling factor must be 4 or 6, got {factor}")
        self.second = (3, 2) if factor == 4 else (5, 3)  # (kernel, stride) of the second conv
        self.conv1 = nn.Conv2d(1, channels, 3, stride=2)
        self.conv2 = nn.Conv2d(channels, channels, self.second[0], stride=self.second[1])
        bins = self.out_length(torch.tensor(input_dim)).item()
        self.proj = nn.Linear(channels * int(bins), output_dim)

    def out_length(self, lengths: Tensor) -> Tensor:
        """Output frames for input lengths (also the frequency bins left of `input_dim`)."""
        kernel, stride = self.second
        return (((lengths - 1) // 2 - (kernel - 1) - 1) // stride + 1).clamp_min(0)

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, T, D), lengths (B,) -> (B, T', output_dim) zero on padding, lengths (B,)."""
        needed = 3 + 2 * (self.second[0] - 1)  # receptive field: a batch yields >= 1 frame
        if x.shape[1] < needed:
            x = nn.functional.pad(x, (0, 0, 0, needed - x.shape[1]))
        y = torch.relu(self.conv1(x.unsqueeze(1)))  # (B, C, T1, F1)
        y = torch.relu(self.conv2(y))  # (B, C, T', F')
        batch, channels, steps, bins = y.shape
        y = self.proj(y.permute(0, 2, 1, 3).reshape(batch, steps, channels * bins))
        out_lengths = self.out_length(lengths)
        return y * valid_mask(out_lengths, steps).unsqueeze(2).to(y.dtype), out_lengths


class PyramidalListener(nn.Module):
    """LAS listener: [conv front end] -> [full-rate BiLSTM] -> `levels` x (pair frames, BiLSTM).

    Args:
        input_dim: D (n_mels).
        hidden: per-direction LSTM size H; the output is (B, T', 2H).
        levels: pyramid levels, each halving time (LAS uses 3: 8x).
        conv_subsample: 1 (none), 2 or 4.
        lstm_before_pyramid: one BiLSTM at the input rate before the first pairing, as in LAS.
        dropout: between layers.
        streaming: left-to-right LSTMs of size 2H instead of BiLSTMs (the output width stays
            2H): every output frame then depends on the input up to its own time, plus one
            frame of look-ahead per stride-2 convolution, so the listener can run while audio
            arrives (`asrkit.streaming`).

    Example:
        >>> listener = PyramidalListener(80, 32, levels=2)
        >>> y, n = listener(torch.zeros(2, 9, 80), torch.tensor([9, 5]))
        >>> tuple(y.shape), n.tolist()
        ((2, 3, 64), [3, 2])
    """

    def __init__(
        self,
        input_dim: int,
        hidden: int,
        levels: int,
        conv_subsample: int = 1,
        lstm_before_pyramid: bool = True,
        dropout: float = 0.0,
        streaming: bool = False,
    ) -> None:
        super().__init__()
        self.conv = (
            ConvSubsampling(input_dim, hidden, conv_subsample) if conv_subsample > 1 else None
        )
        self.streaming = streaming

        def lstm(dim_in: int) -> nn.Module:
            return UniLSTM(dim_in, 2 * hidden) if streaming else BiLSTM(dim_in, hidden)

        dim = hidden if self.conv is not None else input_dim
        self.first = lstm(dim) if lstm_before_pyramid else None
        if self.first is not None:
            dim = 2 * hidden
        self.levels = nn.ModuleList()
        for _ in range(levels):
            self.levels.append(lstm(2 * dim))
            dim = 2 * hidden
        self.output_dim = dim
        self.subsampling = conv_subsample * 2**levels
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, T, D), lengths (B,) -> (B, ceil(T / subsampling), output_dim), lengths."""
        x = x * valid_mask(lengths, x.shape[1]).unsqueeze(2).to(x.dtype)
        if self.conv is not None:
            x, lengths = self.conv(x, lengths)
        if self.first is not None:
            x, lengths = self.first(self.dropout(x), lengths)
        for level in self.levels:
            x, lengths = pyramid_pairs(x, lengths)  # (B, ceil(T/2), 2D)
            # Dropout keeps zeros at zero, so padding stays exactly zero.
            x, lengths = level(self.dropout(x), lengths)
        return x, lengths
