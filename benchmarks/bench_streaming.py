"""Streaming recognition on a manifest: emission latency, accuracy, equality with offline
greedy decoding, and speed.

Each utterance is fed to `asrkit.Stream` in `--chunk-ms` pieces. For every word of the stream's
final transcript, the latency is the audio time the stream had received when it committed the
word's last unit, minus the word's end in a CTC forced alignment of the same words by the
`--reference` model (an offline, bidirectional model, which sees the whole utterance). This is
the algorithmic latency, in steps of one chunk; compute time is the real-time factor on top.
The stream's segments are also compared with `segmented_greedy` of the streaming model on the
whole utterance (they must be equal), and the WERs of the stream and of plain greedy search on
the whole utterance are scored against the manifest.

    OMP_NUM_THREADS=1 python benchmarks/bench_streaming.py --model exp/mini/streaming_monotonic \
        --reference exp/mini/monotonic --data data/mini/mini_dev.jsonl --chunk-ms 160 \
        --json benchmarks/results/streaming_mini_monotonic.json
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from bench_common import print_and_save

from asrkit.checkpoint import LoadedModel, load_model
from asrkit.data.manifest import read_manifest
from asrkit.decoding import greedy_search
from asrkit.decoding.timing import ctc_viterbi, word_groups
from asrkit.features import Fbank, load_audio
from asrkit.io import refuse_overwrite
from asrkit.scoring import score
from asrkit.streaming import Stream
from asrkit.streaming.search import segmented_greedy


def reference_word_ends(reference: LoadedModel, wave: torch.Tensor, text: str) -> list[float]:
    """Seconds at which each word of `text` ends in the reference model's CTC alignment."""
    tokenizer, model = reference.tokenizer, reference.model
    feats = Fbank(reference.config.features)(wave).unsqueeze(0)
    with torch.no_grad():
        enc, lengths = model.encode(feats, torch.tensor([feats.shape[1]]))
        log_probs = model.ctc_log_probs(enc)
    tokens = tokenizer.encode(text)
    if log_probs is None or not tokens:
        return []
    spans = ctc_viterbi(log_probs[0, : int(lengths[0])], tokens)
    if spans is None:
        return []
    shift = model.subsampling * reference.config.features.hop_ms / 1000
    return [spans[group[-1]][1] * shift for group in word_groups(tokens, tokenizer)]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def run(args: argparse.Namespace) -> dict[str, object]:
    streaming, reference = load_model(args.model, "cpu"), load_model(args.reference, "cpu")
    opts = streaming.decode_options(beam=1)
    rate = streaming.config.features.sample_rate
    chunk = rate * args.chunk_ms // 1000
    utts = read_manifest(args.data)[: args.limit or None]
    latencies: list[float] = []
    stream_texts, offline_texts, refs = {}, {}, {}
    equal, stream_wall, audio_seconds, unmatched = 0, 0.0, 0.0, 0
    for utt in utts:
        wave = load_audio(utt.audio, rate)
        started = time.perf_counter()
        stream = Stream(streaming, opts, args.endpoint_seconds)
        for i in range(0, wave.numel(), chunk):
            stream.accept(wave[i : i + chunk])
        result = stream.finish()
        stream_wall += time.perf_counter() - started
        audio_seconds += wave.numel() / rate
        feats = Fbank(streaming.config.features)(wave).unsqueeze(0)
        lengths = torch.tensor([feats.shape[1]])
        with torch.no_grad():
            encoded = streaming.model.encode(feats, lengths)  # once, for both searches
        tokenizer = streaming.tokenizer
        offline = greedy_search(streaming.model, feats, lengths, opts, tokenizer, encoded)[0]
        frames = round(args.endpoint_seconds / stream.frame_shift)
        segments = segmented_greedy(streaming.model, encoded, opts, frames, tokenizer)
        same = [(a, h.tokens) for a, h in segments] == [(a, h.tokens) for a, h in result.segments]
        equal += same
        stream_texts[utt.id], offline_texts[utt.id], refs[utt.id] = (
            result.text,
            offline.text,
            utt.text,
        )
        ends = reference_word_ends(reference, wave, result.text)
        if len(ends) == len(result.emitted):
            latencies += [e - end for e, end in zip(result.emitted, ends, strict=True)]
        else:
            unmatched += 1
    stream_wer = score(refs, stream_texts, bootstrap=100).counts.wer
    offline_wer = score(refs, offline_texts, bootstrap=100).counts.wer
    return {
        "model": str(args.model),
        "reference": str(args.reference),
        "data": str(args.data),
        "utterances": len(utts),
        "chunk_ms": args.chunk_ms,
        "endpoint_seconds": args.endpoint_seconds,
        "stream_equals_segmented_greedy": equal,
        "stream_wer": stream_wer,
        "offline_greedy_wer": offline_wer,
        "words_timed": len(latencies),
        "utterances_not_aligned": unmatched,
        "latency_mean_s": statistics.fmean(latencies) if latencies else None,
        "latency_median_s": statistics.median(latencies) if latencies else None,
        "latency_p90_s": percentile(latencies, 0.9) if latencies else None,
        "stream_rtf": stream_wall / audio_seconds if audio_seconds else None,
        "audio_seconds": audio_seconds,
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="the streaming model")
    parser.add_argument("--reference", type=Path, required=True, help="an offline model")
    parser.add_argument("--data", type=Path, required=True, help="manifest to stream")
    parser.add_argument("--chunk-ms", type=int, default=160)
    parser.add_argument("--endpoint-seconds", type=float, default=1.0)
    parser.add_argument("--limit", type=int, default=0, help="first N utterances (0 = all)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--force", action="store_true", help="replace an earlier --json")
    args = parser.parse_args()
    refuse_overwrite([args.json], args.force)
    result = run(args)
    print_and_save(result, args.json, width=30)


if __name__ == "__main__":
    main()
