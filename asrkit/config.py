"""Typed configuration: one frozen dataclass per concern, YAML holds values only.

`ExperimentConfig` is what a YAML file under `recipes/*/conf/` loads into. Unknown keys are an
error that names the key and suggests the closest valid one; values are type-checked. Dotted
overrides (`train.lr=1e-3`) go through `dataclasses.replace`, so the objects stay frozen.

Example:
    >>> cfg = apply_overrides(ExperimentConfig(), ["optim.lr=0.002", "attention.kind=location"])
    >>> cfg.optim.lr, cfg.attention.kind
    (0.002, 'location')
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from asrkit.io import UserError

T = TypeVar("T")


class ConfigError(UserError, ValueError):
    """A configuration value or key is wrong; the message is one line meant for the user."""


@dataclass(frozen=True)
class FeaturesConfig:
    sample_rate: int = 16000  # audio is resampled to this rate and mixed to mono
    n_mels: int = 80  # log-mel filterbank bins
    win_ms: float = 25.0  # analysis window
    hop_ms: float = 10.0  # frame shift: 100 frames per second


@dataclass(frozen=True)
class ListenerConfig:
    kind: str = "pblstm"  # "pblstm", "transformer" or "conformer"
    conv_subsample: int = 1  # front end subsampling: 1 (none), 2, 4 or 8 (conv1d); 4 or 6 (conv2d)
    hidden: int = 256  # per-direction LSTM size, or model width for self-attention encoders
    layers: int = 3  # pyramid levels (each halves time) or self-attention blocks
    lstm_before_pyramid: bool = True  # LAS puts one full-rate BiLSTM below the pyramid
    heads: int = 4  # self-attention encoders only
    ff_mult: int = 4  # self-attention encoders only: feed-forward width multiple
    left_context: int = -1  # self-attention only: time-restricted mask, -1 = unlimited
    right_context: int = -1  # self-attention only: time-restricted mask, -1 = unlimited
    dropout: float = 0.1  # dropout between layers (and inside self-attention blocks)
    # Subsampling front end: "conv1d" (strided 1-D convs over time, mel bins as channels;
    # conv_subsample 2, 4 or 8) or "conv2d" (ESPnet's 2-D convs over time x frequency, the
    # Conformer front end; conv_subsample 4 or 6)
    frontend: str = "conv1d"
    conv_channels: int = 0  # conv2d only: channels of the 2-D convs; 0 = hidden
    # self-attention only: "absolute" sinusoidal positions added to the input, or "rotary"
    # (RoPE, Su et al. 2021: queries and keys rotated by their position, so attention sees
    # relative offsets; nothing is added to the frames)
    positions: str = "absolute"
    kernel: int = 15  # conformer only: depthwise convolution width (odd)
    # self-attention only: blocks (1-based) after which the CTC head also reads the encoder,
    # for intermediate CTC (Lee & Watanabe 2021); weighted by model.inter_ctc_weight
    inter_ctc_layers: tuple[int, ...] = ()
    # The listener can run while audio arrives (`attnasr transcribe --stream`, `asrkit.Stream`).
    # pblstm: left-to-right LSTMs (size 2 x hidden) instead of BiLSTMs. transformer/conformer:
    # chunked self-attention (each frame sees its own chunk and `left_chunks` chunks before
    # it, never a later one) and a causal convolution module, in place of left/right_context
    streaming: bool = False
    # streaming self-attention only: encoder frames per chunk, after subsampling (8 at 40 ms
    # frames = 320 ms: a frame's look-ahead is the rest of its chunk)
    chunk: int = 8
    left_chunks: int = 8  # streaming self-attention only: earlier chunks a frame sees (-1 = all)

    def __post_init__(self) -> None:
        # Checks across fields (subsampling per front end, heads dividing the width) run when
        # the model is built (`asrkit.model.las.build_listener`): overrides replace one field
        # at a time, so a pair of them would pass through an inconsistent middle state.
        if self.frontend not in ("conv1d", "conv2d"):
            raise ConfigError(f"listener.frontend must be conv1d or conv2d, got {self.frontend!r}")
        if self.positions not in ("absolute", "rotary"):
            raise ConfigError(
                f"listener.positions must be absolute or rotary, got {self.positions!r}"
            )
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ConfigError(f"listener.kernel must be a positive odd number, got {self.kernel}")


@dataclass(frozen=True)
class AttentionConfig:
    kind: str = "location"  # a name in asrkit.model.attention.REGISTRY, or global/local/monotonic
    dim: int = 256  # energy / projection size d_a
    scaling: float = 1.0  # softmax sharpening beta (soft families)
    heads: int = 4  # multihead only
    # location, and local with score "location": conv channels over the previous alignment
    channels: int = 10
    kernel: int = 31  # the same: odd conv width over the previous alignment
    # location only: also convolve the cumulative alignment (coverage), so the attention keeps
    # its place after visiting a frame that attracts mass (e.g. the last frame)
    cumulative: bool = False
    window: int = 8  # local only: half width D of the window, in encoder frames
    # local-m only: frames before the centre (D_l, spec §3.1's asymmetric window); None = window.
    # The centre is the previous token's position, so the next token lies ahead of it
    window_back: int | None = None
    # local only: window score, "general" (projected bilinear, Luong's best), "concat"
    # (Bahdanau's additive w^T tanh(W q + V h + b)) or "location" (concat plus the conv of the
    # previous alignment, U (F * alpha_{i-1}), inside the tanh: Chorowski's location-aware score)
    score: str = "general"
    # local-m only: the window centre is the rounded "expectation" or the "median" of the
    # previous alignment (spec §3.1); the median ignores a stray second peak
    centre: str = "expectation"
    renormalize: bool = False  # local-p only: renormalise after the Gaussian factor
    chunk: int = 2  # mocha only: chunk width w
    r_init: float = -4.0  # monotonic/mocha: energy offset r, negative so early alignment spreads
    # monotonic/mocha: initial energy gain g; None = 1/sqrt(dim) (Raffel et al.). That gain caps
    # |e - r| at 1, so no frame can pass the p > 0.5 test of the hard scan until g has grown to
    # about |r|/sqrt(dim); a gain near 1 lets short trainings decode (the scan stops in time)
    g_init: float | None = None
    noise_std: float = 1.0  # monotonic/mocha: pre-sigmoid noise std in training
    # monotonic/mocha at inference, once the scan ran off the end: "zero" context (what the
    # expected-alignment objective trained for) or the "last_frame" (MILk mass preservation)
    on_exhausted: str = "zero"
    baseline_decay: float = 0.9  # hard only: moving-average REINFORCE baseline
    entropy_weight: float = 0.01  # hard only: entropy bonus lambda_e
    reinforce_weight: float = 1.0  # hard only: lambda_r


@dataclass(frozen=True)
class SpellerConfig:
    embed_dim: int = 128  # token embedding size
    hidden: int = 256  # LSTM decoder size
    layers: int = 1  # LSTM decoder layers
    dropout: float = 0.1  # dropout on the token embedding and on the pre-output layer
    # feed the previous context into the LSTM (LAS, Luong's input feeding); without it the
    # LSTM runs over all decoder steps at once in training, and so does a stateless attention
    # (dot, general, multihead)
    input_feeding: bool = True


@dataclass(frozen=True)
class DecoderConfig:
    # "lstm": the LAS speller (section `speller`); "transformer": causal self-attention over
    # the output prefix, then cross-attention over the encoder (kind: `attention.kind`, one of
    # global / multihead, local / local-m, local-p, monotonic, mocha; attention.heads heads)
    kind: str = "lstm"
    dim: int = 256  # transformer only: model width (also the embedding size)
    layers: int = 4  # transformer only: decoder blocks
    heads: int = 4  # transformer only: self-attention heads (cross-attention: attention.heads)
    ff_mult: int = 4  # transformer only: feed-forward width multiple
    dropout: float = 0.1  # transformer only
    # transformer only: the block whose cross-attention (mean over its heads) is the decoder's
    # alignment: plots, health flags, attention word times, CTC window; -1 = the last
    alignment_layer: int = -1
    # transformer only: "absolute" sinusoids added to the embeddings, or "rotary" (RoPE) in
    # the causal self-attention
    positions: str = "absolute"

    def __post_init__(self) -> None:
        if self.kind not in ("lstm", "transformer"):
            raise ConfigError(
                f"decoder.kind: unknown decoder {self.kind!r} (valid: lstm, transformer)"
            )
        if self.positions not in ("absolute", "rotary"):
            raise ConfigError(
                f"decoder.positions must be absolute or rotary, got {self.positions!r}"
            )


@dataclass(frozen=True)
class ModelConfig:
    ctc_weight: float = 0.3  # lambda of joint CTC-attention loss; 0 disables the CTC head
    label_smoothing: float = 0.1  # cross-entropy label smoothing
    # subtract each utterance's own mean log-mel (per bin, over its frames) after global CMVN:
    # removes the level and microphone colouring of speakers and channels unseen in training
    utterance_cmn: bool = False
    # instead, subtract the mean log-mel of the utterance's speaker over all of its utterances
    # in the manifest (Kaldi's per-speaker CMN; audio only, no transcripts); an utterance with
    # no speaker (transcribe of files) uses its own mean. See asrkit/data/speaker_cmn.py.
    speaker_cmn: bool = False
    # width of the diagonal band of the guided-attention loss, as a share of the utterance
    # (Tachibana et al. 2018); the loss weight and its schedule are train.guide_*
    guide_sigma: float = 0.2
    # share of the CTC loss taken by the intermediate CTC losses (listener.inter_ctc_layers):
    # ctc = (1 - w) * final + w * mean(intermediate)
    inter_ctc_weight: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.inter_ctc_weight < 1.0:
            raise ConfigError(
                f"model.inter_ctc_weight must be in [0, 1), got {self.inter_ctc_weight}"
            )
        if self.utterance_cmn and self.speaker_cmn:
            raise ConfigError("model.utterance_cmn and model.speaker_cmn: choose one of the two")


@dataclass(frozen=True)
class SpecAugmentConfig:
    freq_masks: int = 2  # number of frequency masks
    freq_width: int = 15  # max bins per frequency mask
    time_masks: int = 2  # number of time masks
    time_width: int = 40  # max frames per time mask
    time_max_ratio: float = 0.1  # a time mask covers at most this fraction of the utterance
    time_warp: int = 0  # max warp in frames; 0 disables it
    # Vocal tract length perturbation on the mel axis (Jaitly & Hinton 2013): bins are
    # stretched by a factor drawn from [1 - freq_warp, 1 + freq_warp]; 0 disables it.
    freq_warp: float = 0.0
    speed_perturb: tuple[float, ...] = ()  # e.g. (0.9, 1.0, 1.1); empty disables it
    # Short noise bursts (transient noise, as audiomentations' AddShortNoises):
    # `noise_bursts` per utterance, each 1 to `noise_burst_width` frames long, of
    # exponentially distributed power (Gaussian noise) over the bins from a random lowest bin
    # to the top one (clicks, breaths and releases are high-pass), at a level in dB relative to
    # the utterance's mean power in those bins, drawn from `noise_burst_db` (low, high). Added
    # in the power domain, so speech louder than the burst shows through. 0 disables them.
    noise_bursts: int = 0
    noise_burst_width: int = 10  # see noise_bursts: a burst's longest length, frames
    noise_burst_db: tuple[float, ...] = (-10.0, 5.0)  # see noise_bursts: level range, dB
    # Stationary background noise (as Kaldi's MUSAN or SpeechBrain's AddNoise recipes, but
    # synthesised): with probability `noise_prob` an utterance gets Gaussian noise over all its
    # frames at an SNR in dB drawn from `noise_snr` (low, high) against the utterance's mean
    # power, with a spectrum that tilts linearly over the mel bins by a slope in dB drawn from
    # +-`noise_tilt_db` (dull to bright). Added in the power domain. Empty disables it.
    noise_snr: tuple[float, ...] = ()
    noise_prob: float = 0.5  # see noise_snr: share of utterances that get noise
    noise_tilt_db: float = 12.0  # see noise_snr: largest spectral tilt, dB
    # Piecewise tempo perturbation (pitch and spectra kept): the utterance is cut at random
    # frames into pieces of about `tempo_piece_frames` frames and each piece is stretched in
    # time by its own factor, log-uniform in `tempo_range` (low, high), so one word is drawn
    # out while the next is clipped; the utterance's length changes. Speed perturbation's
    # +-10% stretches every word alike and moves the pitch. Empty disables it. Training
    # throughput (audio-s/s) counts the stretched frames.
    tempo_range: tuple[float, ...] = ()
    tempo_piece_frames: int = 50  # see tempo_range: mean piece length, frames

    def __post_init__(self) -> None:
        if self.noise_bursts < 0 or self.noise_burst_width < 1:
            raise ConfigError(
                "specaug.noise_bursts must be >= 0 and specaug.noise_burst_width >= 1, got "
                f"{self.noise_bursts} and {self.noise_burst_width}"
            )
        low_high = self.noise_burst_db
        if len(low_high) != 2 or low_high[0] > low_high[1]:
            raise ConfigError(f"specaug.noise_burst_db must be [low, high], got {list(low_high)}")
        snr = self.noise_snr
        if snr and (len(snr) != 2 or snr[0] > snr[1]):
            raise ConfigError(f"specaug.noise_snr must be [] or [low, high], got {list(snr)}")
        if not 0.0 <= self.noise_prob <= 1.0 or self.noise_tilt_db < 0:
            raise ConfigError(
                "specaug.noise_prob must be in [0, 1] and specaug.noise_tilt_db >= 0, got "
                f"{self.noise_prob} and {self.noise_tilt_db}"
            )
        tempo = self.tempo_range
        if tempo and (len(tempo) != 2 or not 0.0 < tempo[0] <= tempo[1]):
            raise ConfigError(
                f"specaug.tempo_range must be [] or [low, high] > 0, got {list(tempo)}"
            )
        if self.tempo_piece_frames < 1:
            raise ConfigError(
                f"specaug.tempo_piece_frames must be >= 1, got {self.tempo_piece_frames}"
            )


@dataclass(frozen=True)
class OptimConfig:
    optimizer: str = "adamw"  # "adam" or "adamw"
    lr: float = 1e-3  # peak learning rate
    weight_decay: float = 1e-6  # decoupled (adamw) or L2 (adam) weight decay
    warmup_steps: int = 500  # linear warm-up to the peak
    decay: str = "noam"  # "noam" (inverse sqrt after warm-up), "cosine" or "constant"
    min_lr: float = 1e-5  # floor of the decay
    grad_clip: float = 5.0  # max global gradient norm
    accum_steps: int = 1  # gradient accumulation


@dataclass(frozen=True)
class TrainConfig:
    max_epochs: int = 30  # epochs; also the length of the learning-rate schedule
    max_minutes: float = 0.0  # 0 = no time budget
    # Stop after this many optimizer steps (0 = no limit), as the time budget stops: mid-epoch
    # with a partial validation, at an epoch's end with a full one. A budget-stopped run is
    # repeated on another host by setting this to its train_result.json "steps". A stop, not a
    # schedule length: the learning-rate schedule still spans max_epochs.
    max_steps: int = 0
    max_frames: int = 20000  # batch size in input frames (sum over the batch, after padding)
    max_utt_seconds: float = 30.0  # longer training utterances are skipped (and counted)
    sampling_prob: float = 0.0  # scheduled sampling: final probability of feeding predictions
    sampling_warmup_epochs: int = 2  # scheduled sampling ramps in after this many epochs
    # guided attention: penalise attention far from the diagonal (token share ~ time share)
    # with this weight at the start, fading linearly to 0 over guide_epochs epochs; it gets an
    # attention decoder past the stage where every token attends the same few frames
    guide_weight: float = 0.0
    guide_epochs: int = 4  # see guide_weight: epochs over which the guide fades out
    # SortaGrad: this many first epochs take their batches shortest first, not shuffled
    sortagrad: int = 0
    keep_best: int = 3  # best checkpoints kept (by dev WER) and averaged into the final model
    patience: int = 0  # early stopping after this many epochs without a better dev epoch; 0 = off
    align_check_steps: int = 2000  # warn in plain words if attention is not aligned by then
    num_workers: int = 0  # data-loader workers
    seed: int = 0  # seeds model init, batching, augmentation and dropout
    # "fp32", "bf16" (autocast on CUDA or the CPU; on the CPU it pays only with bf16 matrix
    # units, AVX512-BF16 or AMX, and wide models: benchmarks/RESULTS.md) or "fp16" (CUDA only,
    # loss-scaled; the CPU trains it in fp32). Losses and attention energies stay in fp32.
    precision: str = "fp32"
    plot_utterances: int = 3  # dev utterances whose attention is plotted each epoch
    log_every: int = 10  # steps between metrics.jsonl lines
    plot_every: int = 1  # epochs between attention/health/curve plots; 0 = no plots

    def __post_init__(self) -> None:
        if self.max_steps < 0:
            raise ConfigError(f"train.max_steps must be >= 0, got {self.max_steps}")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ConfigError(f"train.precision must be fp32, bf16 or fp16, got {self.precision!r}")


@dataclass(frozen=True)
class DecodeConfig:
    beam: int = 1  # 1 = greedy
    ctc_weight: float = 0.0  # joint CTC prefix scoring weight in beam search
    length_penalty: float = 1.0  # score / length**penalty normalisation (0 = none)
    eos_threshold: float = 1.5  # eos only if its log-prob is within this of the best token
    max_len_ratio: float = 2.0  # max output tokens per encoder frame (8x subsampling: 25 per s)
    min_len_ratio: float = 0.0  # min output tokens per encoder frame before eos is allowed
    repeat_ngram: int = (
        40  # loop guard: longest cycle (tokens) whose back-to-back copies are limited
    )
    repeat_copies: int = 4  # loop guard: this back-to-back copy of a cycle is blocked
    batch_size: int = 16  # utterances decoded together (each with its beam)
    max_segment_seconds: float = 20.0  # longer audio is cut at quiet points
    # CTC prefix scoring only within this many encoder frames of the attention peak (a step
    # then costs O(window), not O(T)); 0 = every frame (exact).
    ctc_window: int = 0
    # global attention kinds: a step reads at most this many encoder frames past the previous
    # step's peak and att_window_back before it (keeps content attention from jumping back
    # and repeating); 0 = all frames
    att_window: int = 0
    att_window_back: int = 4  # see att_window: frames before the previous peak
    # Shallow fusion with a language model (`attnasr train-lm`): its path (an LM_DIR or .pt,
    # relative paths from the current folder; empty = none), the weight of its log-probs, and
    # a bonus per output unit that keeps fusion from favouring short hypotheses.
    lm: str = ""
    lm_weight: float = 0.0  # see lm: weight of the LM's log-probabilities
    length_bonus: float = 0.0  # see lm: bonus per output unit


@dataclass(frozen=True)
class DataConfig:
    # Paths as given, or else relative to the training manifest's folder; empty = the
    # tokenizer.json / <train>.cmvn.json beside the training manifest.
    tokenizer: str = ""  # path to tokenizer.json
    cmvn: str = ""  # path to cmvn.json
    use_feature_store: bool = True  # read precomputed features when prepare wrote them
    # Speed perturbation draws from a few factors, so the log-mel of each (utterance, factor)
    # is computed once and kept, up to this many MB per training process (only with
    # train.num_workers: 0; workers start afresh every epoch); 0 recomputes it every epoch.
    # The features are the same either way.
    perturbed_cache_mb: int = 1024

    def __post_init__(self) -> None:
        if self.perturbed_cache_mb < 0:
            raise ConfigError(
                f"data.perturbed_cache_mb must be >= 0, got {self.perturbed_cache_mb}"
            )


@dataclass(frozen=True)
class ExperimentConfig:
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    listener: ListenerConfig = field(default_factory=ListenerConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    speller: SpellerConfig = field(default_factory=SpellerConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    specaug: SpecAugmentConfig = field(default_factory=SpecAugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    data: DataConfig = field(default_factory=DataConfig)


def _suggest(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else f" (valid: {', '.join(options)})"


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check `value` against a field annotation; ints pass as floats, lists as tuples."""
    origin = typing.get_origin(annotation)
    if origin is tuple:
        (item_type, _) = typing.get_args(annotation)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return tuple(_coerce(v, item_type, where) for v in value)
    if origin in (typing.Union, types.UnionType):
        return value
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is float and isinstance(value, str):
        # YAML 1.1 reads "3e-4" (no dot) as a string; accept it as the number it means.
        try:
            return float(value)
        except ValueError:
            pass
    if annotation is bool and not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if annotation in (int, float, str) and (
        not isinstance(value, annotation) or isinstance(value, bool)
    ):
        raise ConfigError(f"{where}: expected {annotation.__name__}, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build dataclass `cls` from a plain dict, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in names:
            raise ConfigError(f"unknown config key {path!r}{_suggest(str(key), names)}")
        hint = hints[key]
        if is_dataclass(hint):
            kwargs[key] = from_dict(hint, value or {}, path)  # type: ignore[arg-type]
        else:
            kwargs[key] = _coerce(value, hint, path)
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain-data view of a config (tuples become lists, so it round-trips through YAML)."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))


def yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's several-line message as one line: "line 3, column 7: found ..."."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return where + " ".join(str(problem).split())


def load_yaml(path: Path) -> ExperimentConfig:
    """Load an experiment config; the error names the file and the bad key."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({yaml_problem(exc)})") from exc
    except RecursionError as exc:
        raise ConfigError(f"{path}: not valid YAML (nested too deeply)") from exc
    data = {} if data is None else data
    try:
        return from_dict(ExperimentConfig, data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def save_yaml(cfg: ExperimentConfig, path: Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    from asrkit.io import atomic_write_text

    atomic_write_text(Path(path), yaml.safe_dump(to_dict(cfg), sort_keys=False))


def apply_overrides(cfg: T, overrides: list[str]) -> T:
    """Apply `section.key=value` overrides (values parsed as YAML scalars)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form section.key=value")
        dotted, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: not a YAML value ({yaml_problem(exc)})") from exc
        cfg = _replace_path(cfg, dotted.strip().split("."), value, dotted.strip())
    return cfg


def _replace_path(obj: Any, keys: list[str], value: Any, dotted: str) -> Any:
    names = [f.name for f in fields(obj)]
    head = keys[0]
    if head not in names:
        raise ConfigError(f"unknown config key {dotted!r}{_suggest(head, names)}")
    hint = typing.get_type_hints(type(obj))[head]
    if len(keys) == 1:
        if is_dataclass(hint):
            raise ConfigError(f"{dotted!r} is a section; set one of its keys")
        return dataclasses.replace(obj, **{head: _coerce(value, hint, dotted)})
    if not is_dataclass(hint):
        raise ConfigError(f"{head!r} in {dotted!r} is not a section")
    inner = _replace_path(getattr(obj, head), keys[1:], value, dotted)
    return dataclasses.replace(obj, **{head: inner})
