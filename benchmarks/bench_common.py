"""What the benchmark scripts share: print a flat result and write it as JSON for scripts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from asrkit.io import atomic_write_json


def print_and_save(result: dict[str, Any], json_path: Path | None, width: int = 14) -> None:
    """One `key value` line per entry (floats to 4 decimals); `json_path` written atomically
    when given (the caller has refused to overwrite it without --force)."""
    for key, value in result.items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        print(f"{key:{width}s} {shown}")
    if json_path is not None:
        atomic_write_json(json_path, result)
