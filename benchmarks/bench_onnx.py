"""Decoding with the exported ONNX graphs (ONNX Runtime + NumPy) against PyTorch: equal
transcripts and the real-time factor of each, on a manifest, one thread. Greedy by default;
`--beam K` compares beam search with the model's joint CTC weight (or `--ctc-weight`),
PyTorch's batched search on one utterance at a time, as the ONNX loop runs.

    python benchmarks/bench_onnx.py --model EXP --onnx EXPORTED_DIR --data test.jsonl \
        [--beam 8] --json benchmarks/results/onnx_demo.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from bench_common import print_and_save

from asrkit.checkpoint import load_model
from asrkit.data.manifest import read_manifest
from asrkit.decoding import beam_search, greedy_search
from asrkit.export.onnx_runtime import OnnxRecognizer
from asrkit.features import Fbank, load_audio
from asrkit.io import refuse_overwrite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="the experiment exported")
    parser.add_argument("--onnx", type=Path, required=True, help="what attnasr export wrote")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--beam", type=int, default=1, help="1 = greedy")
    parser.add_argument("--ctc-weight", type=float, help="beam search: default decode.ctc_weight")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    refuse_overwrite([args.json], args.force)
    torch.set_num_threads(1)
    loaded, recognizer = load_model(args.model, "cpu"), OnnxRecognizer(args.onnx, threads=1)
    fbank = Fbank(loaded.config.features)
    opts = loaded.decode_options(beam=args.beam, ctc_weight=args.ctc_weight)
    search = greedy_search if args.beam == 1 else beam_search
    utts = read_manifest(args.data)[: args.limit or None]
    waves = [load_audio(u.audio, loaded.config.features.sample_rate) for u in utts]
    seconds = sum(w.numel() for w in waves) / loaded.config.features.sample_rate
    started = time.perf_counter()
    with torch.no_grad():
        torch_texts = []
        for wave in waves:
            feats = fbank(wave).unsqueeze(0)
            lengths = torch.tensor([feats.shape[1]])
            hyp = search(loaded.model, feats, lengths, opts, loaded.tokenizer)[0]
            torch_texts.append(hyp.text)
    torch_wall = time.perf_counter() - started
    started = time.perf_counter()
    onnx_texts = [recognizer.transcribe(w.numpy(), args.beam, opts.ctc_weight) for w in waves]
    onnx_wall = time.perf_counter() - started
    result = {
        "model": str(args.model),
        "data": str(args.data),
        "format": recognizer.meta["format"],  # onnx_rtf is the exported graphs' either way
        "utterances": len(utts),
        "beam": args.beam,
        "ctc_weight": opts.ctc_weight if args.beam > 1 else 0.0,
        "audio_seconds": seconds,
        "equal": sum(a == b for a, b in zip(torch_texts, onnx_texts, strict=True)),
        "torch_rtf": torch_wall / seconds,
        "onnx_rtf": onnx_wall / seconds,
        "threads": 1,
    }
    print_and_save(result, args.json, width=14)


if __name__ == "__main__":
    main()
