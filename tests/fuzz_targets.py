"""Every parser a user feeds, with a hypothesis strategy of inputs for it (issue 41).

The property is the same for all: a parser returns a result or raises one `UserError` whose
message is one non-empty line; any other exception is a defect. `tests/test_fuzz_parsers.py`
runs a bounded number of examples per parser in CI; `benchmarks/fuzz_parsers.py` runs many
more and writes the counts.

Inputs are a mix of raw bytes (not UTF-8, binary garbage), random text, and structured
near-misses built from what the parser expects (real keys with wrong values, lines with
the right shape and bad fields), which reach much deeper than random bytes do.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import yaml
from hypothesis import strategies as st

from asrkit.config import ExperimentConfig, apply_overrides, load_yaml
from asrkit.io import UserError, one_line

# --- building blocks ---------------------------------------------------------------------

TRICKY_TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from(list(" \t\r\n,;|\"'(){}[]:=#-_.0123456789aAzZ\\/\x00\x0b\x0c\x85\u2028")),
        st.characters(),
    ),
    max_size=300,
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    TRICKY_TEXT,
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TRICKY_TEXT, inner, max_size=4),
    max_leaves=12,
)


def _encoded(text: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    return text.map(lambda s: s.encode("utf-8", errors="surrogatepass"))


def _lines(line: st.SearchStrategy[str], max_size: int = 8) -> st.SearchStrategy[bytes]:
    joiner = st.sampled_from(["\n", "\r\n", "\r"])
    return st.tuples(st.lists(line, max_size=max_size), joiner).map(
        lambda pair: pair[1].join(pair[0]).encode("utf-8", errors="surrogatepass")
    )


def _any_bytes(structured: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """Structured inputs most of the time, plus raw bytes and random text."""
    return st.one_of(
        structured, structured, structured, st.binary(max_size=600), _encoded(TRICKY_TEXT)
    )


# --- structured inputs per format --------------------------------------------------------

_WORDS = st.text(alphabet="ABCXYZ' ", max_size=20)
_IDS = st.one_of(st.text(alphabet="abc-0123_", max_size=12), TRICKY_TEXT)
TRN = _lines(st.builds(lambda w, i: f"{w} ({i})", _WORDS, _IDS) | TRICKY_TEXT)
KALDI = _lines(st.builds(lambda i, w: f"{i} {w}", _IDS, _WORDS) | TRICKY_TEXT)
_MANIFEST_KEYS = ["id", "audio", "duration", "sample_rate", "speaker", "text", "chapter"]
_ROWS = st.dictionaries(st.sampled_from(_MANIFEST_KEYS) | TRICKY_TEXT, JSON_VALUES, max_size=8)
_NEAR_ROWS = st.fixed_dictionaries(  # every field present, each plausible or not
    {
        "id": _IDS,
        "audio": st.sampled_from(["a.wav", "/no/b.flac"]) | TRICKY_TEXT,
        "duration": st.floats(allow_nan=True, allow_infinity=True) | JSON_VALUES,
        "sample_rate": st.sampled_from([16000, 8000, 0, -1]) | JSON_VALUES,
        "speaker": st.sampled_from(["s1", ""]) | JSON_VALUES,
        "text": _WORDS | JSON_VALUES,
    }
)
JSON_LINES = _lines(
    st.one_of(
        _ROWS.map(lambda r: json.dumps(r, allow_nan=True)),
        _NEAR_ROWS.map(lambda r: json.dumps(r, allow_nan=True)),
        _NEAR_ROWS.map(lambda r: json.dumps(r, allow_nan=True)),
        JSON_VALUES.map(json.dumps),
    )
    | TRICKY_TEXT
)
_COLUMN = st.sampled_from(["path", "text", "id", "speaker", "Path", " TEXT "])
_CELL = st.sampled_from(["a.wav", "./a.wav", "sub/../a.wav", "missing.wav", "", "hello"])
TABLE = st.tuples(
    st.lists(_COLUMN | TRICKY_TEXT, max_size=5),
    st.lists(st.lists(_CELL | _WORDS | TRICKY_TEXT, max_size=5), max_size=6),
    st.sampled_from(["\t", ",", ";", "|"]),
).map(
    lambda case: "\n".join(case[2].join(row) for row in [case[0], *case[1]]).encode(
        "utf-8", errors="surrogatepass"
    )
)
LIBRISPEECH = _lines(
    st.builds(
        lambda a, b, c, w: f"{a}-{b}-{c} {w}",
        st.integers(0, 12),
        st.integers(0, 12),
        st.integers(-1, 12),
        _WORDS,
    )
    | st.builds(lambda w: f"1-2-3 {w}", _WORDS)
    | TRICKY_TEXT
)


def _config_keys(cls: type = ExperimentConfig, prefix: str = "") -> list[str]:
    """Every dotted key of the config ("listener.hidden", ...)."""
    keys = []
    for f in fields(cls):  # type: ignore[arg-type]
        value = f.default_factory() if callable(f.default_factory) else f.default  # type: ignore[misc]
        if is_dataclass(value):
            keys += _config_keys(type(value), f"{prefix}{f.name}.")
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


CONFIG_KEYS = _config_keys()
_YAML_SCALAR_TEXT = st.one_of(
    st.sampled_from(
        [
            "1",
            "-1",
            "0",
            "1e-3",
            "3e4",
            "true",
            "no",
            "null",
            "~",
            "[]",
            "{}",
            "[1, 2]",
            "nan",
            ".inf",
            "'x'",
            '"',
            "- a",
            ": b",
            "&a *a",
            "!!python/none",
        ]
    ),
    TRICKY_TEXT,
)
OVERRIDES = st.lists(
    st.one_of(
        st.builds(lambda k, v: f"{k}={v}", st.sampled_from(CONFIG_KEYS), _YAML_SCALAR_TEXT),
        st.builds(lambda k, v: f"{k}={v}", TRICKY_TEXT, _YAML_SCALAR_TEXT),
        TRICKY_TEXT,
    ),
    min_size=1,
    max_size=3,
)


def _nested(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for dotted, value in pairs:
        section, _, key = dotted.partition(".")
        if key:
            node = tree.setdefault(section, {})
            if isinstance(node, dict):
                node[key] = value
        else:
            tree[section] = value
    return tree


YAML_CONFIG = st.one_of(
    st.lists(st.tuples(st.sampled_from(CONFIG_KEYS) | TRICKY_TEXT, JSON_VALUES), max_size=6)
    .map(_nested)
    .map(lambda tree: yaml.safe_dump(tree, allow_unicode=True).encode()),
    _lines(st.builds(lambda k, v: f"{k}: {v}", st.sampled_from(CONFIG_KEYS), _YAML_SCALAR_TEXT)),
    _encoded(_YAML_SCALAR_TEXT),
)
_TOKENIZER = st.dictionaries(
    st.sampled_from(["kind", "vocab", "tokens", "model", "units", "specials"]) | TRICKY_TEXT,
    st.sampled_from(["char", "bpe", "unigram", "sentencepiece"]) | JSON_VALUES,
    max_size=5,
)
_CHAR_TOKENIZER = st.builds(
    lambda extra, pieces: {"kind": "char", "pieces": [*extra, *pieces]},
    st.sampled_from([["<blank>", "<eos>", "<unk>"], ["<blank>"], []]),
    st.lists(st.text(max_size=2) | JSON_VALUES, max_size=6),
)
TOKENIZER = st.one_of(
    _TOKENIZER.map(lambda d: json.dumps(d).encode()),
    _CHAR_TOKENIZER.map(lambda d: json.dumps(d).encode()),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
)
CMVN = st.dictionaries(
    st.sampled_from(["mean", "std", "frames", "made_from"]) | TRICKY_TEXT, JSON_VALUES, max_size=4
).map(lambda d: json.dumps(d).encode())
_ARPA_LINE = st.one_of(
    st.sampled_from(
        [
            "\\data\\",
            "\\end\\",
            "\\1-grams:",
            "\\2-grams:",
            "\\3-grams:",
            "ngram 1=2",
            "ngram 2=1",
            "ngram 1=x",
            "-1.0 <s> -0.5",
            "-0.5 A",
            "-0.3 <s> A",
            "-inf <unk>",
            "nan A",
            "-1.0",
            "1e400 A",
            "-0.2 A B C D",
        ]
    ),
    st.builds(
        lambda p, w, b: f"{p} {w} {b}",
        st.floats(allow_nan=True, allow_infinity=True),
        _WORDS,
        st.floats(allow_nan=True, allow_infinity=True),
    ),
    TRICKY_TEXT,
)
_ARPA_WORD = st.sampled_from(["<s>", "</s>", "<unk>", "A", "B", "C", "IT'S"])


def _arpa_text(unigrams: list, bigrams: list, drop: int | None) -> bytes:
    """A well-formed ARPA file of these entries, with line `drop` left out if given."""
    lines = ["\\data\\", f"ngram 1={len(unigrams)}", f"ngram 2={len(bigrams)}", "", "\\1-grams:"]
    lines += [f"{p} {w} {b}" for p, w, b in unigrams] + ["", "\\2-grams:"]
    lines += [f"{p} {w1} {w2}" for p, w1, w2 in bigrams] + ["", "\\end\\"]
    if drop is not None and lines:
        del lines[drop % len(lines)]
    return "\n".join(lines).encode()


_PROB = st.floats(-9.0, 0.0) | st.sampled_from([float("nan"), float("inf"), -99.0])
WELL_FORMED_ARPA = st.builds(
    _arpa_text,
    st.lists(
        st.tuples(_PROB, _ARPA_WORD, st.floats(-3.0, 0.0)),
        min_size=1,
        max_size=6,
        unique_by=lambda e: e[1],
    ),
    st.lists(st.tuples(_PROB, _ARPA_WORD, _ARPA_WORD), max_size=6, unique_by=lambda e: e[1:]),
    st.none() | st.integers(0, 40),
)
ARPA = st.one_of(WELL_FORMED_ARPA, WELL_FORMED_ARPA, _lines(_ARPA_LINE, max_size=14))
LIST_FILE = _lines(st.one_of(TRICKY_TEXT, st.sampled_from(["# c", "", "a.wav", "/", ".", ".."])))


def real_audio_files() -> dict[str, bytes]:
    """Small real files of every format we read (made here, so the suite needs no data)."""
    rng = np.random.default_rng(0)
    wave = (0.2 * rng.standard_normal(4000)).astype(np.float32)
    made = {}
    for ext, fmt, subtype in [
        (".wav", "WAV", "PCM_16"),
        (".wav", "WAV", "FLOAT"),
        (".flac", "FLAC", "PCM_16"),
        (".ogg", "OGG", "VORBIS"),
        (".mp3", "MP3", "MPEG_LAYER_III"),
    ]:
        buffer = io.BytesIO()
        try:
            sf.write(buffer, wave, 16000, format=fmt, subtype=subtype)
        except (sf.LibsndfileError, TypeError, ValueError):
            continue  # a libsndfile built without that codec
        made[f"{subtype.lower()}{ext}"] = buffer.getvalue()
    return made


REAL_AUDIO = real_audio_files()
_MAGIC = [
    b"RIFF\x24\x00\x00\x00WAVEfmt ",
    b"fLaC\x00\x00\x00\x22",
    b"OggS\x00\x02",
    b"ID3\x04",
    b"\xff\xfb\x90\x64",
    b"FORM\x00\x00\x00\x00AIFF",
    b".snd",
]


def _damaged(data: bytes, cut: float, flips: list[tuple[float, int]]) -> bytes:
    """`data` truncated at fraction `cut` with some bytes overwritten."""
    out = bytearray(data[: max(1, int(len(data) * cut))])
    for where, value in flips:
        out[int(where * (len(out) - 1))] = value
    return bytes(out)


AUDIO = st.one_of(
    st.builds(lambda m, b: m + b, st.sampled_from(_MAGIC), st.binary(max_size=400)),
    st.builds(
        _damaged,
        st.sampled_from(sorted(REAL_AUDIO.values(), key=len)),
        st.floats(0.0, 1.0),
        st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), max_size=4),
    ),
    st.binary(max_size=600),
)


def real_checkpoint() -> bytes:
    """A tiny model's checkpoint file, to truncate and damage."""
    from asrkit.checkpoint import save_checkpoint
    from asrkit.testing import tiny_config, tiny_model
    from asrkit.tokenizer import SPECIALS, CharTokenizer

    tokenizer = CharTokenizer([*SPECIALS, "A", "B"])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "final.pt"
        save_checkpoint(path, tiny_model(vocab_size=tokenizer.vocab_size), tiny_config(), tokenizer)
        return path.read_bytes()


CHECKPOINT = st.one_of(
    st.builds(
        _damaged,
        st.just(real_checkpoint()),
        st.floats(0.0, 1.0),
        st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), max_size=3),
    ),
    st.builds(lambda b: b"PK\x03\x04" + b, st.binary(max_size=400)),  # a zip header
    st.binary(max_size=400),
)
AUDIO_EXTENSIONS = st.sampled_from([".wav", ".flac", ".mp3", ".ogg", ".opus", ".aiff", ".au"])


# --- what each parser is given -------------------------------------------------------------


def _in_file(name: str, data: bytes, call: Callable[[Path], Any], audio: bool = False) -> Any:
    """`call(path)` on `data` written to a fresh folder, with a real `a.wav` beside it when
    `audio` (so that inputs naming it can parse)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        if audio:
            (Path(tmp) / "a.wav").write_bytes(REAL_AUDIO["pcm_16.wav"])
        return call(path)


def _transcripts(data: bytes) -> Any:
    from asrkit.scoring.formats import read_transcripts

    return _in_file("hyp.txt", data, read_transcripts)


def _manifest(data: bytes) -> Any:
    from asrkit.data.manifest import read_manifest

    return _in_file("m.jsonl", data, read_manifest, audio=True)


def _table(case: tuple[bytes, str]) -> Any:
    from data_prep.own_data import prepare_table

    data, ext = case
    return _in_file(
        f"t{ext}",
        data,
        lambda p: prepare_table(p, p.parent / "out", show_progress=False),
        audio=True,
    )


def _librispeech(data: bytes) -> Any:
    from data_prep.librispeech import prepare_librispeech

    with tempfile.TemporaryDirectory() as tmp:
        chapter = Path(tmp) / "LibriSpeech" / "dev-x" / "1" / "2"
        chapter.mkdir(parents=True)
        (chapter / "1-2.trans.txt").write_bytes(data)
        (chapter / "1-2-3.flac").write_bytes(REAL_AUDIO.get("pcm_16.flac", b""))
        return prepare_librispeech(Path(tmp), Path(tmp) / "out", show_progress=False)


def _yaml_config(data: bytes) -> Any:
    return _in_file("c.yaml", data, load_yaml)


def _overrides(items: list[str]) -> Any:
    return apply_overrides(ExperimentConfig(), items)


def _audio(case: tuple[bytes, str]) -> Any:
    from asrkit.features import load_audio
    from data_prep.common import AudioInfo, Problem, probe_audio

    data, ext = case

    def both(path: Path) -> Any:
        for decode in (False, True):  # the prober reports problems, it never raises
            assert isinstance(probe_audio(str(path), decode=decode), AudioInfo | Problem)
        return load_audio(path)

    return _in_file(f"a{ext}", data, both)


def _tokenizer(data: bytes) -> Any:
    from asrkit.tokenizer import load_tokenizer

    return _in_file("tokenizer.json", data, load_tokenizer)


def _cmvn(data: bytes) -> Any:
    from asrkit.features import CMVNStats

    return _in_file("x.cmvn.json", data, CMVNStats.load)


def _arpa(data: bytes) -> Any:
    from asrkit.lm.ngram import ArpaLM

    def parse_and_score(path: Path) -> Any:
        arpa = ArpaLM.load(path)
        return arpa.sentence_score("A B <unk> C")

    return _in_file("lm.arpa", data, parse_and_score)


def _checkpoint(data: bytes) -> Any:
    from asrkit.checkpoint import load_model

    return _in_file("final.pt", data, load_model)


def _list_file(data: bytes) -> Any:
    from asrkit.decoding.inputs import collect_audio

    return _in_file("files.lst", data, lambda p: collect_audio([f"@{p}"]), audio=True)


@dataclass(frozen=True)
class FuzzTarget:
    """One parser: what it reads, the inputs to feed it, and the call."""

    name: str
    inputs: st.SearchStrategy[Any]
    parse: Callable[[Any], Any]


TARGETS = [
    FuzzTarget(
        "transcripts (trn, Kaldi text, JSON lines)",
        _any_bytes(TRN | KALDI | JSON_LINES),
        _transcripts,
    ),
    FuzzTarget("manifest (JSON lines)", _any_bytes(JSON_LINES), _manifest),
    FuzzTarget(
        "table (TSV/CSV)",
        st.tuples(_any_bytes(TABLE), st.sampled_from([".tsv", ".csv", ".txt"])),
        _table,
    ),
    FuzzTarget("LibriSpeech transcripts", _any_bytes(LIBRISPEECH), _librispeech),
    FuzzTarget("YAML config", _any_bytes(YAML_CONFIG), _yaml_config),
    FuzzTarget("--set overrides", OVERRIDES, _overrides),
    FuzzTarget(
        "audio files (headers, truncated and damaged files)",
        st.tuples(AUDIO, AUDIO_EXTENSIONS),
        _audio,
    ),
    FuzzTarget("tokenizer file", _any_bytes(TOKENIZER), _tokenizer),
    FuzzTarget("CMVN statistics", _any_bytes(CMVN), _cmvn),
    FuzzTarget("transcribe list file", _any_bytes(LIST_FILE), _list_file),
    FuzzTarget("checkpoint (truncated, damaged)", CHECKPOINT, _checkpoint),
    FuzzTarget("ARPA n-gram file", _any_bytes(ARPA), _arpa),
]


def outcome(target: FuzzTarget, value: Any) -> str:
    """ "parsed" or "refused"; any exception other than a one-line `UserError` propagates."""
    try:
        target.parse(value)
    except UserError as exc:
        message = one_line(exc)
        assert message.strip(), f"{target.name}: empty error message"
        assert "\n" not in message, f"{target.name}: error of several lines: {message!r}"
        return "refused"
    return "parsed"
