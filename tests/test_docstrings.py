"""Every `>>>` example in the library's docstrings runs and prints what it says."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import asrkit

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(asrkit.__path__, prefix="asrkit.")
    if not info.name.startswith("asrkit.cli")  # Typer apps: examples are shell commands
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
