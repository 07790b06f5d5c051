#!/usr/bin/env bash
# Mini LibriSpeech on a CPU: train-clean-100 + most of dev-clean for training, dev-clean speakers
# 2412 and 2078 held out. Usage (from the repo root):
#   recipes/mini/run.sh --corpus ../shared/data --exp exp/mini_global --attention global --max-minutes 60
#   recipes/mini/run.sh --corpus ../shared/data --exp exp/mini_conformer_local --model conformer --attention local
# Training uses both cores of the 2-core machine the targets are set for as two gloo processes
# (torchrun, 1 thread each; --nproc 1 for a single process). Each process takes batches of
# max_frames / nproc frames, so an optimizer step still sees the configs' 8000 frames. On the
# local config, the first 2.6 minutes ran at 113 audio-s/s as 2 x 1 against 104 as 1 process x 2
# threads (recipes/mini/EXPERIMENTS.md, session 22).
set -euo pipefail
corpus=../shared/data   # folder holding LibriSpeech/
data=data/mini
exp=exp/mini_global
attention=global        # global, local or monotonic
model=lstm              # lstm: conf/$attention.yaml (LSTM-LAS); conformer: conf/conformer_$attention.yaml
max_minutes=60
jobs=2
nproc=2
max_frames=8000         # the configs' train.max_frames, split across the nproc processes
train_args=""           # more `attnasr train` options, e.g. "--set model.ctc_weight=0.3"
lm_kind=ngram           # stage 5: ngram (a word n-gram, look-ahead fusion) or lstm (a character LM)
lm_order=3              # stage 5, ngram: the word n-gram's order
lm_minutes=20           # stage 5, lstm: the character LM's training budget
lm_words=50000          # stage 5: wordfreq words for the LM text (0 = the transcripts only)
stage=0
stop_stage=6
. recipes/common/parse_options.sh
. recipes/common/cpu_train.sh
config=recipes/mini/conf/$attention.yaml
[ "$model" = lstm ] || config=recipes/mini/conf/${model}_$attention.yaml

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  attnasr prepare librispeech "$corpus" --out "$data" --parts train-clean-100,dev-clean --jobs "$jobs"
fi
if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  python recipes/mini/local/make_split.py "$data" --dev-speakers 2412,2078
fi
if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  attnasr prepare features "$data/mini_train.jsonl" --jobs "$jobs"
  attnasr prepare features "$data/mini_dev.jsonl" --jobs "$jobs" --no-cmvn
  attnasr prepare tokenizer --manifest "$data/mini_train.jsonl" --kind char
  # Word pieces for configs that ask for them (data.tokenizer: bpe256/tokenizer.json).
  attnasr prepare tokenizer --manifest "$data/mini_train.jsonl" --kind bpe --vocab-size 256 \
    --out "$data/bpe256/tokenizer.json"
fi
if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  cpu_train "$nproc" "$max_frames" "$config" \
    --train "$data/mini_train.jsonl" --valid "$data/mini_dev.jsonl" --out "$exp" \
    --max-minutes "$max_minutes" $train_args
fi
if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  attnasr evaluate --model "$exp" --manifest "$data/mini_dev.jsonl" --out "$exp/eval/dev"
  # The attention decoder alone, greedy: does it loop or stop early without CTC's help?
  attnasr evaluate --model "$exp" --manifest "$data/mini_dev.jsonl" --out "$exp/eval/dev_greedy" \
    --beam 1 --ctc-weight 0
fi
if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  # A language model over the model's units, from the text this machine has without the dev
  # speakers' sentences, fused in the search: weights chosen on dev speaker 2078, the WER with
  # and without the LM reported on speaker 2412 (same beam and CTC weight).
  python recipes/mini/local/make_lm_text.py "$data" --words "$lm_words" --sentences 25000
  python recipes/mini/local/split_dev_speakers.py "$data"
  lm_text="$data/lm/transcripts.txt"
  [ "$lm_words" = 0 ] || lm_text="$lm_text $data/lm/words.txt"
  lm_weights=0.1,0.2,0.3,0.5,0.7
  if [ "$lm_kind" = ngram ]; then
    # A word n-gram fused with lexicon look-ahead; it carries more weight than a character LM.
    attnasr train-lm $lm_text --out "$exp/lm" --kind ngram --order "$lm_order"
    lm_weights=0.2,0.3,0.5,0.7,1.0
  else
    attnasr train-lm $lm_text --out "$exp/lm" --model "$exp" --max-minutes "$lm_minutes" \
      --set model.embed_dim=128
  fi
  attnasr tune-weights --model "$exp" --manifest "$data/mini_dev_2078.jsonl" --lm "$exp/lm" \
    --lm-weights "$lm_weights" --out "$exp/lm/tune"
  attnasr evaluate --model "$exp" --manifest "$data/mini_dev_2412.jsonl" --out "$exp/eval/dev_2412"
  read -r lm_weight length_bonus < <(python -c 'import json, sys
c = json.load(open(sys.argv[1]))["chosen"]; print(c["lm_weight"], c["length_bonus"])' "$exp/lm/tune/tune.json")
  if [ "$lm_weight" = 0.0 ]; then
    echo "$0: no LM weight helped on speaker 2078 (tune.json); nothing fused" >&2
  else
    attnasr evaluate --model "$exp" --manifest "$data/mini_dev_2412.jsonl" \
      --out "$exp/eval/dev_2412_lm" --lm "$exp/lm" --lm-weight "$lm_weight" \
      --length-bonus "$length_bonus"
  fi
fi
if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
  python recipes/common/results_table.py --out recipes/mini/RESULTS.md "$(dirname "$exp")"
fi
