#!/usr/bin/env bash
# Connected digits from FSDD: strings of one speaker's digits, trained on five speakers and
# scored on theo. Every 10th string of each training speaker is held out as the dev set that
# picks checkpoints; theo is only decoded at the end (stage 3). Each attention family trains
# for at most 10 minutes on 2 CPU cores: three models side by side, one process each, decoded
# together as an ensemble (--members 1 --nproc 2: one model on two gloo processes instead).
# Usage (from the repo root):
#   recipes/digits/run.sh [--fsdd ../shared/data/fsdd/recordings] [--attentions "global local"]
set -euo pipefail
fsdd=../shared/data/fsdd/recordings
data=data/digits
exp_root=exp/digits
attentions="global local monotonic"
max_minutes=10
# Models per family, trained side by side for the same budget and decoded as an ensemble
# (`attnasr evaluate --model A --model B`): on 2 cores two 1-process runs train 362 audio-s/s
# together where one 2-process gloo run trains 213-258 (its all-reduce waits on every small
# step), so each member gets 68-81% of the steps of the single run (recipes/digits/EXPERIMENTS.md,
# session 28). Three members rather than two since session 29: on the held-out training
# speaker lucas the monotonic triple made 321 errors of 1,640 words where session 28's pair
# made 417 (all three members reached the 30-epoch cap, 209 audio-s/s each on that host).
# Members land in EXP_ROOT/KIND/member-<m>; with 1 member, in EXP_ROOT/KIND.
members=3
# Training processes per member (torchrun, gloo on the CPU, 1 thread each). Three 1-process
# members share 2 cores without loss: together they trained 627 audio-s/s where a pair trained
# 622 the same hour (monotonic; session 29). Each process takes batches of max_frames / nproc
# frames, so the batch per optimizer step stays the configs' 3000 frames.
nproc=1
max_frames=3000
seed=0                  # member m trains with train.seed = seed * members + m (try --seed 1, 2)
train_args=""           # more `attnasr train` options, e.g. "--set specaug.noise_bursts=4"
stage=0
stop_stage=4
command="recipes/digits/run.sh $*"
. recipes/common/parse_options.sh
. recipes/common/cpu_train.sh

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  attnasr prepare fsdd "$fsdd" --out "$data"
  python recipes/digits/local/make_split.py "$data"   # train_fit.jsonl + dev.jsonl
fi
if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  attnasr prepare features "$data/train_fit.jsonl"
  attnasr prepare features "$data/dev.jsonl" --no-cmvn
  attnasr prepare features "$data/test.jsonl" --no-cmvn
  attnasr prepare tokenizer --manifest "$data/train_fit.jsonl" --kind bpe --vocab-size 56 \
    --out "$data/tokenizer.json"
fi
member_dir() {  # member_dir KIND M
  if [ "$members" -gt 1 ]; then echo "$exp_root/$1/member-$2"; else echo "$exp_root/$1"; fi
}
if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  for attention in $attentions; do
    pids=()
    for m in $(seq 0 $((members - 1))); do
      cpu_train "$nproc" "$max_frames" "recipes/digits/conf/$attention.yaml" \
        --train "$data/train_fit.jsonl" --valid "$data/dev.jsonl" \
        --out "$(member_dir "$attention" "$m")" --max-minutes "$max_minutes" \
        --set train.seed=$((seed * members + m)) $train_args &
      pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid"; done  # a failed member stops the recipe
  done
fi
if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  for attention in $attentions; do
    models=()
    for m in $(seq 0 $((members - 1))); do models+=(--model "$(member_dir "$attention" "$m")"); done
    # The config's search (decode.beam, decode.ctc_weight) and greedy search on the attention
    # alone, both on the unseen test speaker.
    attnasr evaluate "${models[@]}" --manifest "$data/test.jsonl" \
      --out "$exp_root/$attention/eval/test"
    attnasr evaluate "${models[@]}" --manifest "$data/test.jsonl" --beam 1 \
      --ctc-weight 0 --out "$exp_root/$attention/eval/test_greedy"
  done
fi
if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  python recipes/common/results_table.py --out recipes/digits/RESULTS.md \
    --command "$command" "$exp_root"
fi
