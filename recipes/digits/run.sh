#!/usr/bin/env bash
# Connected digits from FSDD: strings of one speaker's digits, trained on five speakers and
# scored on theo. Each attention family trains for at most 10 minutes on 2 CPU cores.
#   recipes/digits/run.sh [--fsdd ../shared/data/fsdd/recordings] [--attentions "global local"]
set -euo pipefail
fsdd=../shared/data/fsdd/recordings
data=data/digits
exp_root=exp/digits
attentions="global local monotonic"
max_minutes=10
stage=0
stop_stage=4
. recipes/common/parse_options.sh

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  attnasr prepare fsdd "$fsdd" --out "$data"
fi
if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  attnasr prepare features "$data/train.jsonl"
  attnasr prepare features "$data/test.jsonl" --no-cmvn
  attnasr prepare tokenizer --manifest "$data/train.jsonl" --kind bpe --vocab-size 56
fi
if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  for attention in $attentions; do
    attnasr train "recipes/digits/conf/$attention.yaml" --train "$data/train.jsonl" \
      --valid "$data/test.jsonl" --out "$exp_root/$attention" --max-minutes "$max_minutes"
  done
fi
if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  for attention in $attentions; do
    attnasr evaluate --model "$exp_root/$attention" --manifest "$data/test.jsonl" \
      --out "$exp_root/$attention/eval/test"
  done
fi
if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  python recipes/common/results_table.py --out recipes/digits/RESULTS.md "$exp_root"
fi
