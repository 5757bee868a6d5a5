"""Every relative link and file reference in README.md, docs/*.md and the CLI's help texts
resolves to a file in the repository.

- Markdown links ``[text](target)`` (not URLs, not pure ``#anchors``): relative to the
  page, ``#anchor`` stripped;
- file references in code spans (and, in help texts, in the plain text): a path that
  starts with one of the repository's top-level entries (``docs/``, ``xsys/``,
  ``deploy/``...) from the repository root, and a bare ``NAME.md`` from the page's folder
  or the root (so ``PROTOCOL.md``, which does not exist, fails).

``PENDING``: pages other branches add (linked from the docs index already); they warn
instead of failing until they exist.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import click
import pytest

from xsys.cli import main

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
TOP = sorted(p.name for p in REPO.iterdir() if not p.name.startswith("."))
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
CODE_SPAN = re.compile(r"`([^`\n]+)`")
#: A path starting with a top-level entry of the repository, or a bare Markdown file.
REF = re.compile(r"(?<![\w./~-])((?:" + "|".join(re.escape(t) for t in TOP if "." not in t)
                 + r")/[\w./-]*|[\w-]+\.md)(?![\w/])")
#: Pages other branches add; the lead merges them (see the module docstring).
PENDING: set[str] = set()


#: Outputs written at run time (git-ignored): a reference to them is not a broken one.
GENERATED = ("bench/results/", "clients/typescript/dist/")


def _exists(target: Path) -> bool:
    rel = str(target.resolve().relative_to(REPO)) if target.resolve().is_relative_to(REPO) else ""
    return target.exists() or (rel + "/").startswith(GENERATED)


def _check(target: Path, where: str, broken: list[str]) -> None:
    rel = target.resolve().relative_to(REPO) if target.resolve().is_relative_to(REPO) else target
    if _exists(target):
        return
    if str(rel) in PENDING:
        warnings.warn(f"{where}: {rel} is added by another branch (pending)", stacklevel=2)
        return
    broken.append(f"{where}: {rel}")


def references(text: str) -> list[str]:
    """The file references in a piece of text (see the module docstring)."""
    return [m.group(1).rstrip(".") for m in REF.finditer(text)]


def test_reference_pattern() -> None:
    assert references("see docs/protocol.md, and PROTOCOL.md.") == ["docs/protocol.md",
                                                                     "PROTOCOL.md"]
    assert references("/etc/xsys/config.json ~/.config/xsys/x.md?") == []
    assert references("`deploy/prometheus/` and xsys/cli/config.py") == [
        "deploy/prometheus/", "xsys/cli/config.py"]


def test_a_missing_file_is_reported(tmp_path: Path) -> None:
    broken: list[str] = []
    _check(REPO / "PROTOCOL.md", "here", broken)
    _check(REPO / "docs" / "protocol.md", "here", broken)
    assert broken == ["here: PROTOCOL.md"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_page_links_and_references_resolve(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    broken: list[str] = []
    for m in LINK.finditer(text):
        target = m.group(1)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL (https:, mailto:) or an anchor on this page
        line = text.count("\n", 0, m.start()) + 1
        _check(page.parent / target.split("#", 1)[0], f"{page.name}:{line} link", broken)
    for m in CODE_SPAN.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        for ref in references(m.group(1)):
            base = REPO if "/" in ref else page.parent
            if "/" not in ref and not (base / ref).exists():
                base = REPO
            _check(base / ref, f"{page.name}:{line} `{ref}`", broken)
    assert not broken, "references that resolve to no file:\n" + "\n".join(broken)


def _help_texts() -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []

    def walk(cmd: click.Command, path: list[str], parent: click.Context | None) -> None:
        ctx = click.Context(cmd, info_name=path[-1], parent=parent)
        out.append((" ".join(path), cmd.get_help(ctx)))
        if isinstance(cmd, click.Group):  # lazy groups load their commands on demand
            for name in sorted(cmd.list_commands(ctx)):
                sub = cmd.get_command(ctx, name)
                if sub is not None:
                    walk(sub, [*path, name], ctx)

    walk(main, ["xsys"], None)
    return out


def test_cli_help_texts_reference_existing_files() -> None:
    helps = _help_texts()
    assert len(helps) > 20, "the CLI walk found too few commands"
    broken: list[str] = []
    for name, text in helps:
        for ref in references(text):
            _check(REPO / ref, f"`{name} --help`", broken)
    assert not broken, "help texts name files the repository lacks:\n" + "\n".join(broken)
