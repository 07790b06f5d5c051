"""Data preparation: turn corpora on disk into JSON-lines manifests (see `asrkit.data.manifest`).

Every entry point is an idempotent, typed function; `attnasr prepare ...` only calls them:
`prepare_librispeech` (LibriSpeech tree, optionally downloaded from openslr),
`prepare_folder` / `prepare_table` (your own audio), `prepare_fsdd` (connected digit strings)
and `train_tokenizer`.
"""
