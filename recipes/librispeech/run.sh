#!/usr/bin/env bash
# LibriSpeech, scored on dev/test clean and other. Multi-GPU: --gpus N (runs under torchrun).
#   100 h, characters:  recipes/librispeech/run.sh --corpus /data --attention global
#   960 h, BPE 5000:    recipes/librispeech/run.sh --corpus /data --set 960h \
#     --train-parts train-clean-100,train-clean-360,train-other-500 \
#     --tokenizer-args "--kind bpe --vocab-size 5000" --gpus 4
#   Conformer + Transformer decoder (BPE 5000):  ... --model conformer \
#     --tokenizer-args "--kind bpe --vocab-size 5000"
set -euo pipefail
corpus=/data/librispeech          # folder holding LibriSpeech/
data=data/librispeech
set=100h                          # picks recipes/librispeech/conf/${set}_$attention.yaml
attention=global                  # global, local or monotonic
model=lstm                        # lstm: conf/${set}_$attention.yaml; conformer: conf/${set}_conformer_$attention.yaml
train_parts=train-clean-100
tokenizer_args="--kind char"
train_args=""                     # more `attnasr train` options, e.g. "--max-epochs 40"
test_sets="dev-clean dev-other test-clean test-other"
exp_root=exp/librispeech
gpus=1
jobs=8
stage=0
stop_stage=4
. recipes/common/parse_options.sh
name=${set}_$attention
[ "$model" = lstm ] || name=${set}_${model}_$attention
exp=$exp_root/$name

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  attnasr prepare librispeech "$corpus" --out "$data" --jobs "$jobs" \
    --parts "$train_parts,dev-clean,dev-other,test-clean,test-other"
  python recipes/librispeech/local/combine.py "$data" "$train_parts" "$data/train_$set.jsonl"
  attnasr prepare features "$data/train_$set.jsonl" --jobs "$jobs"
  attnasr prepare features "$data/dev-clean.jsonl" --jobs "$jobs" --no-cmvn
fi
if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  attnasr prepare tokenizer --manifest "$data/train_$set.jsonl" $tokenizer_args
fi
if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  torchrun --standalone --nproc_per_node "$gpus" -m asrkit.cli.main train \
    "recipes/librispeech/conf/$name.yaml" --train "$data/train_$set.jsonl" \
    --valid "$data/dev-clean.jsonl" --out "$exp" $train_args
fi
if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  for test_set in $test_sets; do
    attnasr evaluate --model "$exp" --manifest "$data/$test_set.jsonl" --out "$exp/eval/$test_set"
  done
fi
if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  python recipes/common/results_table.py --out recipes/librispeech/RESULTS.md "$exp_root"
fi
