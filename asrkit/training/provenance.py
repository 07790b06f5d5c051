"""`EXP/provenance.json`: what each training session ran on, so that a result can be repeated.

One entry per `attnasr train` session (a resume adds one, since it may run elsewhere): the
command, the versions of asrkit, torch, torchaudio and Python, the git commit of the asrkit
checkout (null when asrkit is installed from a wheel or git is missing), the host (CPU model,
cores, OS), the processes and threads, the device, and each manifest's path, utterance count
and sha256. A budget-stopped run is repeated from it with the same data, code and process count
and `--max-steps` set to the steps of its `train_result.json`.

Example:
    >>> record = session_record(Path("data/digits/train_fit.jsonl"),  # doctest: +SKIP
    ...                         Path("data/digits/dev.jsonl"), processes=2, device="cpu")
    >>> append_session(Path("exp/digits_global"), record)      # doctest: +SKIP
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

import asrkit
from asrkit.io import atomic_write_json, file_sha256

FILE_NAME = "provenance.json"


def host_description() -> str:
    """One line naming the CPU model, its core count and the OS (e.g. to compare speeds)."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
        model = names[0] if names else model
    return f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def git_state(folder: Path) -> dict[str, Any] | None:
    """`{"commit", "dirty"}` of the git checkout holding the package in `folder`, else None.

    The package's `__init__.py` must be tracked there: a wheel installed into a virtual
    environment inside some other repository must not report that repository's commit.
    """
    try:
        _git(folder, "ls-files", "--error-unmatch", "__init__.py")
        commit = _git(folder, "rev-parse", "HEAD")
        changes = _git(folder, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(changes)}


def _git(folder: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(folder), *args], capture_output=True, text=True, check=True, timeout=10
    )
    return done.stdout.strip()


def _manifest(path: Path) -> dict[str, Any]:
    with Path(path).open("rb") as handle:
        utterances = sum(1 for line in handle if line.strip())
    return {"path": str(path), "utterances": utterances, "sha256": file_sha256(path)}


def session_record(
    train_manifest: Path, valid_manifest: Path, processes: int, device: str
) -> dict[str, Any]:
    """What this training session runs: command, code, host, processes and data."""
    return {
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": list(sys.argv),  # as the process saw it (torchrun: the module path)
        "asrkit": asrkit.__version__,
        "git": git_state(Path(asrkit.__file__).parent),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchaudio": _version("torchaudio"),
        "host": host_description(),
        "processes": processes,
        "threads_per_process": torch.get_num_threads(),
        "device": device,
        "data": {"train": _manifest(train_manifest), "valid": _manifest(valid_manifest)},
    }


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def append_session(exp_dir: Path, record: dict[str, Any]) -> None:
    """Add `record` to EXP/provenance.json (written atomically; created by the first session)."""
    path = Path(exp_dir) / FILE_NAME
    sessions = json.loads(path.read_text())["sessions"] if path.is_file() else []
    atomic_write_json(path, {"sessions": [*sessions, record]})
