"""Decode a manifest greedily with a model trained with per-utterance CMN, once as trained and
once with speaker means in place of utterance means (test time only), and print both WERs.

Usage: python recipes/digits/local/cmn_probe.py EXP_DIR data/digits/test.jsonl
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import jiwer

from asrkit.checkpoint import LoadedModel, load_model
from asrkit.data.manifest import read_manifest
from asrkit.decoding.api import decode_utterances


def greedy_wer(loaded: LoadedModel, manifest: Path) -> str:
    utts = read_manifest(manifest)
    opts = loaded.decode_options(beam=1, ctc_weight=0.0)
    transcripts, _ = decode_utterances(loaded, utts, opts, progress=False)
    out = jiwer.process_words([u.text for u in utts], [t.text for t in transcripts])
    return (
        f"WER {100 * out.wer:.2f}% (S {out.substitutions}, D {out.deletions}, I {out.insertions})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exp", type=Path, help="experiment trained with model.utterance_cmn")
    parser.add_argument("manifest", type=Path, help="manifest with speaker fields")
    args = parser.parse_args()
    loaded = load_model(args.exp)
    print(f"utterance means (as trained): {greedy_wer(loaded, args.manifest)}")
    model_cfg = dataclasses.replace(loaded.config.model, utterance_cmn=False, speaker_cmn=True)
    loaded.model.utterance_cmn = False
    speaker = dataclasses.replace(
        loaded, config=dataclasses.replace(loaded.config, model=model_cfg)
    )
    print(f"speaker means (test time only): {greedy_wer(speaker, args.manifest)}")


if __name__ == "__main__":
    main()
