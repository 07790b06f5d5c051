"""Shared fixtures. Real data lives beside the repo in ../shared/data (or $ATTNASR_SHARED_DATA);
tests that need it skip with the reason when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    return Path(os.environ.get("ATTNASR_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not (path / "LibriSpeech").is_dir():
        pytest.skip(f"shared speech data not found at {path} (set ATTNASR_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def librispeech_dir(shared_data: Path) -> Path:
    return shared_data / "LibriSpeech"


@pytest.fixture(scope="session")
def fsdd_dir(shared_data: Path) -> Path:
    path = shared_data / "fsdd" / "recordings"
    if not path.is_dir():
        pytest.skip(f"FSDD recordings not found at {path}")
    return path


@pytest.fixture(autouse=True)
def _seed_and_threads() -> None:
    # Tests run on 2 cores next to each other; one intra-op thread keeps timings sane.
    torch.manual_seed(0)
    torch.set_num_threads(1)
