"""Tokenizers: characters or SentencePiece (BPE/unigram), saved as one self-contained JSON file.

Ids 0-2 are reserved in every tokenizer:
    0 `<blank>`: CTC blank, also used to pad token tensors;
    1 `<eos>`: start and end of sentence for the speller;
    2 `<unk>`.

Example:
    >>> tok = CharTokenizer.train(["HELLO WORLD"])
    >>> tok.decode(tok.encode("HELLO"))
    'HELLO'
"""

from __future__ import annotations

import base64
import json
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from asrkit.io import MissingPathError, UserError, atomic_write_json, require_file

BLANK_ID, EOS_ID, UNK_ID = 0, 1, 2
SPECIALS = ("<blank>", "<eos>", "<unk>")
SPACE = "▁"  # word boundary symbol, as in SentencePiece


class Tokenizer(ABC):
    """Maps text to ids and back; `pieces[i]` is the surface string of id i."""

    kind: str
    pieces: list[str]

    @property
    def vocab_size(self) -> int:
        return len(self.pieces)

    @abstractmethod
    def encode(self, text: str) -> list[int]: ...

    @abstractmethod
    def to_dict(self) -> dict[str, Any]: ...

    def decode(self, ids: Iterable[int]) -> str:
        """Ids to text; specials are dropped and `▁` becomes a space."""
        pieces = [self.pieces[i] for i in ids if i >= len(SPECIALS)]
        return "".join(pieces).replace(SPACE, " ").strip()

    def word_starts(self, ids: list[int]) -> list[bool]:
        """For each id, whether it begins a new word (used for word timings)."""
        starts, previous_space = [], True
        for i in ids:
            piece = self.pieces[i] if i < len(self.pieces) else ""
            starts.append(piece != SPACE and (piece.startswith(SPACE) or previous_space))
            previous_space = piece == SPACE
        return starts

    def save(self, path: Path) -> None:
        atomic_write_json(Path(path), self.to_dict())


class CharTokenizer(Tokenizer):
    """One id per character; a space is the token `▁`."""

    kind = "char"

    def __init__(self, pieces: list[str]) -> None:
        self.pieces = list(pieces)
        self._index = {p: i for i, p in enumerate(self.pieces)}

    @classmethod
    def train(cls, texts: Iterable[str]) -> CharTokenizer:
        chars = sorted({c for t in texts for c in t.replace(" ", SPACE)})
        return cls([*SPECIALS, *[c for c in chars if c not in SPECIALS]])

    def encode(self, text: str) -> list[int]:
        text = " ".join(text.split()).replace(" ", SPACE)
        return [self._index.get(c, UNK_ID) for c in text]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "pieces": self.pieces}


class SentencePieceTokenizer(Tokenizer):
    """SentencePiece BPE or unigram; ids are shifted so that 0-2 stay our specials."""

    kind = "sentencepiece"

    def __init__(self, model_proto: bytes, model_type: str) -> None:
        import sentencepiece as spm

        self.model_proto = model_proto
        self.model_type = model_type
        self._sp = spm.SentencePieceProcessor(model_proto=model_proto)
        # SentencePiece ids 0-2 are its own <unk>, <s>, </s>: we map them onto ours.
        self.pieces = [*SPECIALS] + [
            self._sp.id_to_piece(i) for i in range(3, self._sp.get_piece_size())
        ]

    @classmethod
    def train(
        cls, texts: Iterable[str], vocab_size: int, model_type: str = "bpe"
    ) -> SentencePieceTokenizer:
        import sentencepiece as spm

        with tempfile.TemporaryDirectory() as tmp:
            corpus = Path(tmp) / "text.txt"
            corpus.write_text("\n".join(texts) + "\n")
            spm.SentencePieceTrainer.train(
                input=str(corpus),
                model_prefix=str(Path(tmp) / "spm"),
                vocab_size=vocab_size,
                model_type=model_type,
                character_coverage=1.0,
                unk_id=0,
                bos_id=1,
                eos_id=2,
                pad_id=-1,
                minloglevel=2,
            )
            proto = (Path(tmp) / "spm.model").read_bytes()
        return cls(proto, model_type)

    def encode(self, text: str) -> list[int]:
        ids = self._sp.encode(" ".join(text.split()))
        return [i if i >= 3 else UNK_ID for i in ids]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "model_type": self.model_type,
            "model": base64.b64encode(self.model_proto).decode("ascii"),
            "pieces": self.pieces,
        }


def tokenizer_from_dict(data: dict[str, Any]) -> Tokenizer:
    """The tokenizer a `to_dict` wrote (a tokenizer file, or the one inside a checkpoint).

    Raises:
        UserError: an unknown kind, or fields that do not make a tokenizer (one line).
    """
    kind = data.get("kind")
    if kind == "char":
        pieces = data.get("pieces")
        if not (isinstance(pieces, list) and all(isinstance(p, str) for p in pieces)):
            raise UserError("a char tokenizer needs 'pieces', a list of strings")
        if pieces[: len(SPECIALS)] != list(SPECIALS) or len(set(pieces)) != len(pieces):
            raise UserError(f"char tokenizer pieces must start with {SPECIALS} and be unique")
        return CharTokenizer(pieces)
    if kind == "sentencepiece":
        model, model_type = data.get("model"), data.get("model_type")
        if not (isinstance(model, str) and isinstance(model_type, str)):
            raise UserError("a sentencepiece tokenizer needs 'model' and 'model_type' strings")
        try:
            return SentencePieceTokenizer(base64.b64decode(model, validate=True), model_type)
        except (ValueError, RuntimeError, TypeError) as exc:  # binascii.Error is a ValueError
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise UserError(f"the sentencepiece model does not load ({reason})") from exc
    raise UserError(f"unknown tokenizer kind {kind!r}")


def load_tokenizer(path: Path) -> Tokenizer:
    path = Path(path)
    if not path.exists():
        hint = "run 'attnasr prepare tokenizer'"
        raise MissingPathError(f"{path}: tokenizer file not found ({hint})")
    require_file(path, "tokenizer file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not a tokenizer file (not UTF-8 text)") from exc
    except (json.JSONDecodeError, RecursionError) as exc:
        raise UserError(f"{path}: not a tokenizer file (not valid JSON)") from exc
    if not isinstance(data, dict):
        raise UserError(f"{path}: not a tokenizer file (expected a JSON object)")
    try:
        return tokenizer_from_dict(data)
    except UserError as exc:
        raise UserError(f"{path}: not a tokenizer file ({exc})") from exc
