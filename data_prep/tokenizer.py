"""Train a tokenizer on a manifest's transcripts and save it as one self-contained JSON file.

The file holds the tokenizer itself (`asrkit.tokenizer.tokenizer_from_dict` reads it back, the
SentencePiece model embedded) plus a `trained_on` record: manifest, kind, vocabulary size and
the number of transcripts, so it can be rebuilt with the same command.

Example:
    >>> train_tokenizer(Path("data/train-clean-100.jsonl"), kind="bpe", vocab_size=256)
    PosixPath('data/tokenizer.json')
"""

from __future__ import annotations

import json
from pathlib import Path

from asrkit.data.manifest import read_manifest
from asrkit.io import UserError, atomic_write_json, file_sha256, require_file
from asrkit.tokenizer import SPECIALS, CharTokenizer, SentencePieceTokenizer, Tokenizer

TOKENIZER_KINDS = ("char", "bpe", "unigram")


def train_tokenizer(
    manifest: Path,
    kind: str = "char",
    vocab_size: int | None = None,
    out: Path | None = None,
    force: bool = False,
) -> Path:
    """Train a tokenizer on `manifest`'s text and write it (default `tokenizer.json` beside it).

    Args:
        manifest: the training manifest.
        kind: "char", "bpe" or "unigram".
        vocab_size: total vocabulary including the 3 specials; required for bpe/unigram.
        out: output path.
        force: overwrite an existing file.

    Returns:
        The written path; an existing tokenizer trained from the same manifest content with
        the same kind and size is kept as it is.

    Raises:
        UserError: unknown kind, missing or impossible vocabulary size, an existing output
            trained from other text or settings.
    """
    manifest = Path(manifest)
    out = Path(out) if out else manifest.with_name("tokenizer.json")
    if kind not in TOKENIZER_KINDS:
        raise UserError(f"unknown tokenizer kind {kind!r} (valid: {', '.join(TOKENIZER_KINDS)})")
    if kind != "char" and (vocab_size is None or vocab_size <= len(SPECIALS)):
        raise UserError(f"--kind {kind} needs --vocab-size larger than {len(SPECIALS)}")
    wanted = {
        "manifest": str(manifest.resolve()),
        "manifest_sha256": file_sha256(require_file(manifest, "manifest")),
        "kind": kind,
        "requested_vocab_size": vocab_size if kind != "char" else None,
    }
    if out.exists() and not force:
        _check_current(out, wanted)
        return out
    texts = [u.text for u in read_manifest(manifest)]
    tokenizer: Tokenizer
    if kind == "char":
        tokenizer = CharTokenizer.train(texts)
    else:
        try:
            tokenizer = SentencePieceTokenizer.train(texts, int(vocab_size or 0), model_type=kind)
        except RuntimeError as exc:
            # SentencePiece says e.g. "Vocabulary size is too high (5000). Please set it to a
            # value <= 1234." when the text is too small for the size asked for.
            reason = str(exc).strip().splitlines()[-1]
            raise UserError(f"{manifest}: cannot train a {kind} tokenizer ({reason})") from exc
    record = {**wanted, "vocab_size": tokenizer.vocab_size, "utterances": len(texts)}
    atomic_write_json(out, {**tokenizer.to_dict(), "trained_on": record})
    return out


def _check_current(out: Path, wanted: dict[str, object]) -> None:
    """Keep a tokenizer trained from the same manifest content with the same settings; refuse,
    naming the difference, one trained otherwise (or by an older attnasr, which did not record
    the manifest's content)."""
    try:
        record = json.loads(out.read_text(encoding="utf-8")).get("trained_on") or {}
    except (OSError, ValueError, AttributeError):
        record = {}
    if "manifest_sha256" not in record:
        raise UserError(
            f"{out}: already exists, made by an older attnasr that did not record its training"
            " text; use --force to replace it"
        )
    differ = [key for key, value in wanted.items() if record.get(key) != value]
    if differ:
        what = ", ".join("manifest content" if k == "manifest_sha256" else k for k in differ)
        raise UserError(
            f"{out}: already exists, trained with another {what}; use --force to replace it"
        )
