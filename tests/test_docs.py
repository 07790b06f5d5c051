"""The documentation "builds": the generated config reference is current, every relative link
and anchor resolves, and every `attnasr` command and option the pages show exists."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer

from asrkit.cli.main import app
from asrkit.config_docs import reference

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PAGES += sorted((ROOT / "recipes").glob("*/EXPERIMENTS.md"))
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    slugs = set()
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            slugs.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return slugs


def test_config_reference_is_generated_from_the_code() -> None:
    checked_in = (ROOT / "docs" / "config-reference.md").read_text(encoding="utf-8")
    assert checked_in == reference(), (
        "docs/config-reference.md is stale: python -m asrkit.config_docs > docs/config-reference.md"
    )


def test_every_config_key_has_a_meaning() -> None:
    empty = [line for line in reference().splitlines() if line.endswith("|  |")]
    assert empty == [], "fields without a comment in asrkit/config.py: " + "; ".join(empty)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve(page: Path) -> None:
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        exists = linked.exists()
        if not exists or (anchor and linked.suffix == ".md" and anchor not in anchors(linked)):
            broken.append(target)
    assert broken == [], f"{page.name}: broken links {broken}"


def _commands() -> dict[str, Any]:
    """Every command path ("prepare folder", "evaluate") with its click command."""
    root = typer.main.get_command(app)
    found: dict[str, Any] = {}

    def walk(group: Any, prefix: str) -> None:
        if hasattr(group, "commands"):  # a group (typer may bring its own click)
            for name, command in group.commands.items():
                walk(command, f"{prefix} {name}".strip())
        else:
            found[prefix] = group

    walk(root, "")
    return found


def _shown_invocations(text: str) -> list[str]:
    """`attnasr ...` lines in the pages' bash blocks, continuation lines joined."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        lines += [ln.strip() for ln in joined.splitlines() if ln.strip().startswith("attnasr ")]
    return lines


def test_every_shown_command_and_option_exists() -> None:
    commands = _commands()
    problems = []
    for page in PAGES:
        for line in _shown_invocations(page.read_text(encoding="utf-8")):
            words = line.split()[1:]
            name = " ".join(words[:2]) if " ".join(words[:2]) in commands else words[0]
            if name not in commands:
                problems.append(f"{page.name}: no command {name!r} ({line})")
                continue
            options = {o for p in commands[name].params for o in [*p.opts, *p.secondary_opts]}
            for option in re.findall(r"(?<![\w-])(--[a-z][\w-]*)", line):
                if option not in options:
                    problems.append(f"{page.name}: {name} has no {option} ({line})")
    assert problems == []


def test_readme_is_a_users_guide() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250
    first_screen = "\n".join(lines[:45])
    assert "pip install" in first_screen and "attnasr demo" in first_screen
    assert "docs/" in first_screen  # where to go next
    assert not any(re.search(r"\bsession \d+", line, re.I) for line in lines)
