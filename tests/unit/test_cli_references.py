"""Every ``facesearch …`` command that a message or a document tells people to run exists.

An error message that names a missing command sends a user nowhere; so does a
README line. Commands are recognised where they are quoted as something to run:
in backticks, in parentheses, after ``run`` or after a shell prompt ``$``.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from facesearch.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
QUOTED = re.compile(r"(?:``?|\(|\brun |\$ )facesearch ((?:[a-z][a-z-]*)(?:[ |][a-z][a-z-]*)*)")


def command_tree(parser: argparse.ArgumentParser) -> dict[str, dict[str, object]]:
    """{command: {subcommand: {...}}} from the real argparse parser."""
    tree: dict[str, dict[str, object]] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                tree[name] = command_tree(sub)  # type: ignore[assignment]
    return tree


def _sources() -> list[Path]:
    code = [*(ROOT / "shared" / "facesearch").rglob("*.py"), *(ROOT / "functions").rglob("*.py")]
    docs = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), ROOT / "Makefile"]
    return [p for p in [*code, *docs] if p.is_file()]


def quoted_commands() -> list[tuple[str, str]]:
    found = []
    for path in _sources():
        for match in QUOTED.finditer(path.read_text()):
            found.append((str(path.relative_to(ROOT)), match.group(1)))
    return found


def missing(tree: dict[str, dict[str, object]], words: str) -> str | None:
    """The first word of ``words`` that is not a command where one is expected."""
    level: dict[str, object] = tree  # type: ignore[assignment]
    for word in re.split(r"[ ]", words):
        if not level:
            return None  # the rest are arguments (IMAGE, PATH...)
        options = word.split("|")
        unknown = [w for w in options if w not in level]
        if unknown:
            return unknown[0]
        level = level[options[0]]  # type: ignore[assignment]
    return None


def test_the_scan_sees_commands() -> None:
    assert len(quoted_commands()) > 20  # README, docs and messages quote many commands


@pytest.mark.parametrize(("where", "words"), quoted_commands())
def test_quoted_command_exists(where: str, words: str) -> None:
    tree = command_tree(build_parser())
    bad = missing(tree, words)
    assert bad is None, f"{where}: `facesearch {words}` names {bad!r}, which is no command"


def test_a_missing_command_is_caught() -> None:
    tree = command_tree(build_parser())
    assert missing(tree, "rebuild") == "rebuild" or "rebuild" in tree
    assert missing(tree, "index stats") is None
    assert missing(tree, "index frobnicate") == "frobnicate"
    assert missing(tree, "index stats|verify") is None
