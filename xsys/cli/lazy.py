"""The CLI's Click groups: ``XsysGroup`` lists its commands with their whole summary
(wrapped, never cut with "..." as Click's listing does), and ``LazyGroup`` adds
subcommands that live in modules imported only when the command runs (or its own
``--help`` is asked for), so that ``xsys --help`` and a data command import no more than
they use. Imports only Click."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import click


@dataclass(frozen=True)
class Lazy:
    """Where a subcommand lives: ``target`` is ``"module:attribute"``; ``short_help`` is
    its one-line summary in the group's listing (tests/test_cli_help.py checks it is the
    command's own)."""

    target: str
    short_help: str

    def load(self) -> click.Command:
        """Import the module and return the command (``TypeError`` if it is not one)."""
        module, attr = self.target.split(":")
        cmd = getattr(importlib.import_module(module), attr)
        if not isinstance(cmd, click.Command):
            raise TypeError(f"{self.target} is not a click command")
        return cmd


def plain_help(text: str | None) -> str | None:
    """Help text for a terminal: the RST ``code`` markup docstrings use removed."""
    return None if text is None else text.replace("``", "")


class XsysCommand(click.Command):
    """A ``click.Command`` whose help (its docstring) is shown without RST markup."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help = plain_help(self.help)
        self.short_help = plain_help(self.short_help)


def summary(cmd: click.Command) -> str:
    """A command's one-line summary: its ``short_help``, else the first paragraph of its
    help, whitespace collapsed. Never cut."""
    text = cmd.short_help or (cmd.help or "").split("\n\n")[0]
    return " ".join(text.replace("\b", "").split())


class XsysGroup(click.Group):
    """A ``click.Group`` whose listing shows each command's whole ``summary``, wrapped to
    the terminal (Click's own listing cuts summaries with "..."); its help and its
    commands' (``XsysCommand``, subgroups ``XsysGroup``) have no RST markup."""

    command_class = XsysCommand
    group_class = type  # subgroups of the same class

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help = plain_help(self.help)
        self.short_help = plain_help(self.short_help)

    def summary_of(self, ctx: click.Context, name: str) -> str | None:
        """The listing's text for ``name``; None for a hidden or unknown command."""
        cmd = self.get_command(ctx, name)
        return None if cmd is None or cmd.hidden else summary(cmd)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            text = self.summary_of(ctx, name)
            if text is not None:
                rows.append((name, text))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class LazyGroup(XsysGroup):
    """A ``click.Group`` with ``lazy`` subcommands (name -> ``Lazy``) besides the ones
    added the usual way. The group's listing (``--help``) takes their summaries from the
    ``Lazy`` entries and imports nothing; running, completing or asking one for its help
    imports its module once."""

    def __init__(self, *args: Any, lazy: Mapping[str, Lazy] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, Lazy] = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is None and cmd_name in self.lazy:
            cmd = self.lazy[cmd_name].load()
            self.add_command(cmd, cmd_name)
        return cmd

    def summary_of(self, ctx: click.Context, name: str) -> str | None:
        """The listing's text, without importing a lazy command's module."""
        if name in self.lazy and name not in self.commands:
            return self.lazy[name].short_help
        return super().summary_of(ctx, name)
