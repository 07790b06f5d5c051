"""Train a language model: one plain loop, dev perplexity per epoch, exact resume.

LM_DIR receives `final.pt` (rewritten whenever the dev perplexity improves), the resumable
`checkpoints/last.pt` (after every epoch and when a budget stops the run mid-epoch, with the
batch position and random state, so `--resume` continues exactly), `metrics.jsonl` (one row
per epoch) and `lm_result.json`.

Example:
    >>> cfg = LMExperimentConfig()
    >>> result = train_lm([Path("lm.txt")], Path("exp/lm"), tokenizer, cfg)  # doctest: +SKIP
    >>> result.best_dev_perplexity  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import Progress

from asrkit.io import (
    UserError,
    atomic_write_json,
    ensure_writable_dir,
    refuse_overwrite,
    write_jsonl,
)
from asrkit.lm.checkpoint import save_lm
from asrkit.lm.config import LMExperimentConfig
from asrkit.lm.data import encode_sentences, make_batch, read_sentences, split_dev, token_batches
from asrkit.lm.model import LanguageModel, build_lm
from asrkit.tokenizer import Tokenizer

console = Console(stderr=True)


@dataclass(frozen=True)
class LMResult:
    """What a run produced."""

    lm_dir: Path
    best_dev_perplexity: float  # per unit, incl. the end of sentence
    epochs: int
    steps: int
    stop_reason: str  # "done", "early-stop" or "budget"
    train_sentences: int
    dev_sentences: int
    tokens_per_second: float


@dataclass
class _State:
    """What resumes: counters, the best score so far, the epoch's position."""

    epoch: int = 0
    batch: int = 0
    step: int = 0
    train_seconds: float = 0.0
    tokens: int = 0
    best: float = math.inf
    bad_epochs: int = 0
    epoch_loss: float = 0.0  # summed over this epoch's tokens so far
    epoch_tokens: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)  # metrics.jsonl, one per epoch


def _rate(step: int, warmup: int) -> float:
    """Linear warm-up to 1 over `warmup` steps, then 1 / sqrt(step / warmup)."""
    step = max(step, 1)
    return step / warmup if step < warmup else math.sqrt(warmup / step)


def _nll(model: LanguageModel, rows: list[torch.Tensor], device: str) -> tuple[float, int]:
    batch = make_batch(rows)
    logits = model(batch.inputs.to(device), batch.lengths.to(device))
    loss = F.cross_entropy(
        logits.flatten(0, 1), batch.targets.to(device).flatten(), reduction="sum"
    )
    return loss, batch.tokens


@torch.no_grad()
def dev_perplexity(
    model: LanguageModel, rows: list[torch.Tensor], max_tokens: int, device: str
) -> float:
    """exp(mean negative log-likelihood per unit) of `rows` (each ending with <eos>)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for indices in token_batches(rows, max_tokens):
        loss, tokens = _nll(model, [rows[i] for i in indices], device)
        total, count = total + float(loss), count + tokens
    model.train(was_training)
    return math.exp(total / max(count, 1))


def _prepare_dir(out: Path, resume: bool, force: bool) -> Path | None:
    """The checkpoint to resume from, or None for a fresh run (refusing earlier results)."""
    last = out / "checkpoints" / "last.pt"
    if resume:
        if not last.is_file():
            raise UserError(f"{out}: nothing to resume (no checkpoints/last.pt)")
        return last
    refuse_overwrite([out / "final.pt", last, out / "metrics.jsonl"], force)
    if force:
        for stale in (out / "final.pt", last, out / "metrics.jsonl", out / "lm_result.json"):
            stale.unlink(missing_ok=True)
    ensure_writable_dir(out)
    return None


def train_lm(
    texts: list[Path],
    out: Path,
    tokenizer: Tokenizer,
    cfg: LMExperimentConfig,
    valid: list[Path] | None = None,
    resume: bool = False,
    force: bool = False,
    device: str = "cpu",
) -> LMResult:
    """Train `cfg.model` on the sentences of `texts` (dev: `valid`, else a held-out share).

    Raises:
        UserError: earlier results in `out` (without `force` / `resume`), unreadable or
            empty text, nothing to resume.
    """
    out = Path(out)
    last = _prepare_dir(out, resume, force)
    sentences = read_sentences(texts)
    if valid:
        train_text, dev_text = sentences, read_sentences(valid)
    else:
        train_text, dev_text = split_dev(sentences, cfg.train.dev_fraction, cfg.train.seed)
    longest = cfg.train.max_sentence_tokens
    train_rows = encode_sentences(train_text, tokenizer, longest)
    dev_rows = encode_sentences(dev_text, tokenizer, longest)
    torch.manual_seed(cfg.train.seed)
    model = build_lm(cfg.model, tokenizer.vocab_size).to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay
    )
    state = _State()
    if last is not None:
        state = _restore(last, model, optimizer, cfg)
    reason = _loop(model, optimizer, state, train_rows, dev_rows, tokenizer, cfg, out, device)
    result = LMResult(
        out,
        state.best,
        state.epoch,
        state.step,
        reason,
        len(train_rows),
        len(dev_rows),
        state.tokens / max(state.train_seconds, 1e-9),
    )
    atomic_write_json(out / "lm_result.json", {**asdict(result), "lm_dir": str(out)})
    return result


def _restore(
    last: Path, model: LanguageModel, optimizer: torch.optim.Optimizer, cfg: LMExperimentConfig
) -> _State:
    from asrkit.checkpoint import load_checkpoint
    from asrkit.lm.checkpoint import LM_FORMAT, LM_REQUIRED

    data = load_checkpoint(last, LM_FORMAT, LM_REQUIRED)
    if data["config"]["model"] != json.loads(json.dumps(asdict(cfg.model))):
        raise UserError(f"{last}: was trained with another model config; resume without --set")
    model.load_state_dict(data["model"])
    train_state: dict[str, Any] = data["train_state"]
    optimizer.load_state_dict(train_state["optimizer"])
    torch.set_rng_state(train_state["rng"])
    return _State(**train_state["progress"])


def _save_last(
    out: Path,
    model: LanguageModel,
    optimizer: torch.optim.Optimizer,
    state: _State,
    cfg: LMExperimentConfig,
    tokenizer: Tokenizer,
) -> None:
    train_state = {
        "optimizer": optimizer.state_dict(),
        "rng": torch.get_rng_state(),
        "progress": asdict(state),
    }
    save_lm(out / "checkpoints" / "last.pt", model, cfg, tokenizer, train_state)


def _loop(
    model: LanguageModel,
    optimizer: torch.optim.Optimizer,
    state: _State,
    train_rows: list[torch.Tensor],
    dev_rows: list[torch.Tensor],
    tokenizer: Tokenizer,
    cfg: LMExperimentConfig,
    out: Path,
    device: str,
) -> str:
    """Epochs until done, early stop or budget; returns the reason."""
    tc = cfg.train
    budget = tc.max_minutes * 60 if tc.max_minutes > 0 else math.inf
    batches = token_batches(train_rows, tc.max_tokens)
    while state.epoch < tc.max_epochs:
        order = torch.randperm(
            len(batches), generator=torch.Generator().manual_seed(tc.seed * 1_000_003 + state.epoch)
        ).tolist()
        model.train()
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task(
                f"LM epoch {state.epoch + 1}", total=len(order), completed=state.batch
            )
            while state.batch < len(order):
                if state.train_seconds >= budget:
                    _save_last(out, model, optimizer, state, cfg, tokenizer)
                    return "budget"
                started = time.perf_counter()
                loss, tokens = _nll(
                    model, [train_rows[i] for i in batches[order[state.batch]]], device
                )
                optimizer.zero_grad(set_to_none=True)
                (loss / tokens).backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
                state.step += 1
                for group in optimizer.param_groups:
                    group["lr"] = tc.lr * _rate(state.step, tc.warmup_steps)
                optimizer.step()
                state.batch += 1
                state.epoch_loss += loss.item()
                state.epoch_tokens += tokens
                state.tokens += tokens
                state.train_seconds += time.perf_counter() - started
                bar.advance(task)
        if _end_epoch(model, optimizer, state, dev_rows, tokenizer, cfg, out, device):
            return "early-stop"
    return "done"


def _end_epoch(
    model: LanguageModel,
    optimizer: torch.optim.Optimizer,
    state: _State,
    dev_rows: list[torch.Tensor],
    tokenizer: Tokenizer,
    cfg: LMExperimentConfig,
    out: Path,
    device: str,
) -> bool:
    """Dev perplexity, metrics row, best and last checkpoints; True to stop early."""
    dev = dev_perplexity(model, dev_rows, cfg.train.max_tokens, device)
    train_ppl = math.exp(state.epoch_loss / max(state.epoch_tokens, 1))
    improved = dev < state.best
    state.best = min(state.best, dev)
    state.bad_epochs = 0 if improved else state.bad_epochs + 1
    row = {
        "epoch": state.epoch + 1,
        "step": state.step,
        "train_perplexity": round(train_ppl, 4),
        "dev_perplexity": round(dev, 4),
        "best": improved,
    }
    state.rows.append(row)
    console.print(
        f"LM epoch {state.epoch + 1}: train perplexity {train_ppl:.3f}, dev {dev:.3f}"
        + (" (best)" if improved else ""),
        highlight=False,
    )
    if improved:
        save_lm(out / "final.pt", model, cfg, tokenizer)
    state.epoch, state.batch, state.epoch_loss, state.epoch_tokens = state.epoch + 1, 0, 0.0, 0
    _save_last(out, model, optimizer, state, cfg, tokenizer)
    write_jsonl(out / "metrics.jsonl", state.rows)  # rewritten whole: always matches last.pt
    patience = cfg.train.patience
    return patience > 0 and state.bad_epochs >= patience
