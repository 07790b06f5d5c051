# Sourced by the CPU recipes. cpu_train NPROC MAX_FRAMES ARGS... runs `attnasr train ARGS...`
# as NPROC processes under torchrun (gloo on the CPU; one process runs plain `attnasr train`).
# Each process takes batches of MAX_FRAMES / NPROC frames, so the batch per optimizer step stays
# the config's MAX_FRAMES.
cpu_train() {
  local nproc=$1 max_frames=$2
  shift 2
  local train=(attnasr train)
  if [ "$nproc" -gt 1 ]; then
    train=(torchrun --standalone --nproc_per_node "$nproc" -m asrkit.cli.main train)
  fi
  "${train[@]}" "$@" --set train.max_frames=$((max_frames / nproc))
}
