"""``xsys fs ...``: sandboxed file operations through the daemon, as tables or ``--json``.

Relative paths are made absolute against the current directory before they are sent (the
daemon would take them relative to its first root). Long operations (``cp``, ``mv``,
``hash``, ``du``, ``find``) show a progress bar on a terminal, driven by ``fs.progress``.
"""

from __future__ import annotations

import os
import stat as stat_mod
import sys
import time
from collections.abc import Callable
from typing import Any

import click

from xsys.cli.common import (
    call,
    connected,
    human_bytes,
    json_option,
    pairs,
    print_json,
    table,
)
from xsys.monitor.units import parse_bytes
from xsys.protocol import TooLarge

#: Bytes per ``fs.read`` while ``cat`` streams a file.
CAT_CHUNK_BYTES = 4 * 1024 * 1024


def absolute(path: str) -> str:
    """``path`` made absolute against the CLI's working directory (``~`` expanded)."""
    return os.path.abspath(os.path.expanduser(path))


def when(ts: float | None) -> str:
    """Epoch seconds as local ``YYYY-MM-DD HH:MM``."""
    if ts is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def mode_string(kind: str, mode: int) -> str:
    """``("dir", 0o755)`` -> ``drwxr-xr-x``."""
    bits = {"dir": stat_mod.S_IFDIR, "symlink": stat_mod.S_IFLNK, "fifo": stat_mod.S_IFIFO,
            "socket": stat_mod.S_IFSOCK, "char_device": stat_mod.S_IFCHR,
            "block_device": stat_mod.S_IFBLK}.get(kind, stat_mod.S_IFREG)
    return stat_mod.filemode(bits | mode)


class Progress:
    """Renders ``fs.progress`` notifications on stderr: a bar when the total is known, a
    running count otherwise; nothing when stderr is not a terminal or ``quiet``."""

    def __init__(self, label: str, quiet: bool = False) -> None:
        self.label = label
        self.enabled = not quiet and sys.stderr.isatty()
        self._bar: Any = None
        self._shown = 0
        self._counting = False

    def __call__(self, params: dict[str, Any]) -> None:
        if not self.enabled:
            return
        done = int(params.get("done") or 0)
        total = params.get("total")
        unit = params.get("unit", "bytes")
        if isinstance(total, int) and total > 0:
            if self._bar is None:
                self._bar = click.progressbar(length=total, label=self.label, file=sys.stderr,
                                              show_eta=True, show_percent=True)
                self._bar.__enter__()
            self._bar.update(max(0, done - self._shown))
            self._shown = done
        else:
            shown = human_bytes(done) if unit == "bytes" else f"{done} {unit}"
            click.echo(f"\r{self.label}: {shown} scanned", nl=False, err=True)
            self._counting = True

    def close(self) -> None:
        """Finish the bar or the count line."""
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None
        if self._counting:
            click.echo("", err=True)
            self._counting = False


def with_progress(ctx: click.Context, method: str, label: str, quiet: bool,
                  **params: Any) -> Any:
    """Call ``method`` asking for progress and render it (see ``Progress``)."""
    progress = Progress(label, quiet)
    clean = {k: v for k, v in params.items() if v is not None}
    with connected(ctx, timeout=None) as client:
        try:
            return client.call(method, clean,
                               on_progress=progress if progress.enabled else None)
        finally:
            progress.close()


@click.group("fs")
def fs_group() -> None:
    """Files through the daemon, confined to its fs.roots."""


@fs_group.command("ls")
@click.argument("path", default=".")
@click.option("-r", "--recursive", is_flag=True, help="Descend into subdirectories.")
@click.option("-a", "--all", "include_hidden", is_flag=True, help="Include dot files.")
@click.option("--glob", default=None, help="Only names matching this pattern.")
@click.option("--limit", type=int, default=None, help="At most this many entries.")
@json_option
@click.pass_context
def ls(ctx: click.Context, path: str, recursive: bool, include_hidden: bool,
       glob: str | None, limit: int | None, as_json: bool) -> None:
    """List a directory."""
    r = call(ctx, "fs.list", path=absolute(path), recursive=recursive, glob=glob,
             include_hidden=include_hidden, limit=limit)
    if as_json:
        print_json(r)
        return
    rows = []
    for e in r["entries"]:
        name = e["name"] + ("/" if e["type"] == "dir" else "")
        if e.get("symlink_target"):
            name += f" -> {e['symlink_target']}"
        rows.append([mode_string(e["type"], e["mode"]), human_bytes(e["size"]),
                     when(e["mtime_at"]), name])
    click.echo(table(rows, ["MODE", "SIZE", "MODIFIED", "NAME"], right=(1,)))
    if r["truncated"]:
        click.echo(f"(truncated at {len(r['entries'])} entries; use --limit)", err=True)


@fs_group.command("stat")
@click.argument("path")
@json_option
@click.pass_context
def stat(ctx: click.Context, path: str, as_json: bool) -> None:
    """Metadata of a file, directory or symlink."""
    r = call(ctx, "fs.stat", path=absolute(path))
    if as_json:
        print_json(r)
        return
    items = [("path", r["path"]), ("type", r["type"]),
             ("size", f"{r['size']} ({human_bytes(r['size'])})"),
             ("mode", f"{mode_string(r['type'], r['mode'])} ({r['mode']:04o})"),
             ("owner", f"uid {r['uid']}, gid {r['gid']}"), ("links", r["nlink"]),
             ("inode", r["inode"]), ("modified", when(r["mtime_at"])),
             ("accessed", when(r["atime_at"])), ("changed", when(r["ctime_at"]))]
    if r.get("symlink_target") is not None:
        items.append(("target", r["symlink_target"]))
    click.echo(pairs(items))


@fs_group.command("cat")
@click.argument("path")
@click.option("--offset", type=int, default=0, help="First byte.")
@click.option("--length", type=int, default=None, help="Bytes to print (default: all).")
@click.pass_context
def cat(ctx: click.Context, path: str, offset: int, length: int | None) -> None:
    """Print a file (streamed in pieces, so any size works)."""
    out = sys.stdout.buffer
    remaining = length
    piece = CAT_CHUNK_BYTES
    with connected(ctx) as client:
        while remaining is None or remaining > 0:
            want = piece if remaining is None else min(piece, remaining)
            try:
                r = client.call("fs.read", path=absolute(path), offset=offset, length=want)
            except TooLarge as exc:  # the daemon's fs.max_read_bytes is lower: adapt
                limit = (exc.data or {}).get("limit")
                if not isinstance(limit, int) or limit <= 0 or limit >= want:
                    raise
                piece = limit
                continue
            out.write(r["data"])
            offset += r["length"]
            if remaining is not None:
                remaining -= r["length"]
            if r["eof"] or not r["length"]:
                break
    out.flush()


@fs_group.command("write")
@click.argument("path")
@click.option("--data", default=None, help="Content (default: read stdin).")
@click.option("--append", "mode", flag_value="append", help="Append instead of replacing.")
@click.option("--create", "mode", flag_value="create", help="Fail if the file exists.")
@click.option("--overwrite", "mode", flag_value="overwrite", default=True,
              help="Replace atomically (default).")
@click.option("-p", "--make-parents", is_flag=True, help="Create missing directories.")
@click.option("--expected-sha256", default=None,
              help="Only write if the current content has this sha256.")
@json_option
@click.pass_context
def write(ctx: click.Context, path: str, data: str | None, mode: str, make_parents: bool,
          expected_sha256: str | None, as_json: bool) -> None:
    """Write a file from --data or stdin (create, atomic overwrite, or append)."""
    payload: bytes = data.encode() if data is not None else sys.stdin.buffer.read()
    r = call(ctx, "fs.write", path=absolute(path), data=payload, mode=mode,
             make_parents=make_parents, expected_sha256=expected_sha256)
    if as_json:
        print_json(r)
        return
    verb = {"append": "appended", "create": "created"}.get(r["mode"], "wrote")
    click.echo(f"{verb} {r['written_bytes']} bytes to {r['path']} (now {r['size']} bytes)")


def _into_dir(ctx: click.Context, src: str, dst: str) -> str:
    """``cp``/``mv`` convenience: a destination that is an existing directory (or ends in
    ``/``) receives ``src`` under its own name."""
    if dst.endswith(os.sep):
        return os.path.join(dst, os.path.basename(src.rstrip(os.sep)))
    r = call(ctx, "fs.exists", path=dst)
    if r["exists"] and r["type"] == "dir":
        return os.path.join(dst, os.path.basename(src.rstrip(os.sep)))
    return dst


def _transfer(ctx: click.Context, method: str, verb: str, src: str, dst: str, overwrite: bool,
              preserve: bool | None, as_json: bool) -> None:
    s = absolute(src)
    d = _into_dir(ctx, s, absolute(dst) + (os.sep if dst.endswith(os.sep) else ""))
    r = with_progress(ctx, method, verb, as_json, src=s, dst=d, overwrite=overwrite,
                      preserve=preserve)
    if as_json:
        print_json(r)
        return
    what = f"{r['files']} files, {r['dirs']} dirs, {human_bytes(r['copied_bytes'])}"
    if r.get("renamed"):
        what = "renamed"
    click.echo(f"{r['src']} -> {r['dst']} ({what})")


@fs_group.command("cp")
@click.argument("src")
@click.argument("dst")
@click.option("-f", "--overwrite", is_flag=True, help="Replace existing files.")
@click.option("-p", "--preserve", is_flag=True, help="Keep timestamps.")
@json_option
@click.pass_context
def cp(ctx: click.Context, src: str, dst: str, overwrite: bool, preserve: bool,
       as_json: bool) -> None:
    """Copy a file or directory tree (into DST when it is a directory)."""
    _transfer(ctx, "fs.copy", "copying", src, dst, overwrite, preserve, as_json)


@fs_group.command("mv")
@click.argument("src")
@click.argument("dst")
@click.option("-f", "--overwrite", is_flag=True, help="Replace an existing destination.")
@json_option
@click.pass_context
def mv(ctx: click.Context, src: str, dst: str, overwrite: bool, as_json: bool) -> None:
    """Move or rename (into DST when it is a directory)."""
    _transfer(ctx, "fs.move", "moving", src, dst, overwrite, None, as_json)


@fs_group.command("rm")
@click.argument("paths", nargs=-1, required=True)
@click.option("-r", "--recursive", is_flag=True, help="Remove directories and their content.")
@json_option
@click.pass_context
def rm(ctx: click.Context, paths: tuple[str, ...], recursive: bool, as_json: bool) -> None:
    """Remove files, symlinks or directories."""
    results = []
    with connected(ctx) as client:
        for p in paths:
            results.append(client.call("fs.remove", path=absolute(p), recursive=recursive))
    if as_json:
        print_json(results if len(results) > 1 else results[0])
        return
    for r in results:
        click.echo(f"removed {r['path']}" + (f" ({r['files']} files, {r['dirs']} dirs)"
                                              if r["dirs"] else ""))


@fs_group.command("mkdir")
@click.argument("path")
@click.option("-p", "--parents", is_flag=True, help="Make parents; fine if it exists.")
@json_option
@click.pass_context
def mkdir(ctx: click.Context, path: str, parents: bool, as_json: bool) -> None:
    """Create a directory."""
    r = call(ctx, "fs.mkdir", path=absolute(path), parents=parents)
    if as_json:
        print_json(r)
        return
    click.echo(("created " if r["created"] else "exists ") + r["path"])


@fs_group.command("hash")
@click.argument("paths", nargs=-1, required=True)
@click.option("-a", "--algorithm", type=click.Choice(["sha256", "sha1", "md5", "blake2b"]),
              default="sha256", show_default=True)
@json_option
@click.pass_context
def hash_(ctx: click.Context, paths: tuple[str, ...], algorithm: str, as_json: bool) -> None:
    """Hash files (prints ``digest  path`` like sha256sum)."""
    results = [with_progress(ctx, "fs.hash", os.path.basename(p), as_json,
                             path=absolute(p), algorithm=algorithm) for p in paths]
    if as_json:
        print_json(results if len(results) > 1 else results[0])
        return
    for r in results:
        click.echo(f"{r['digest']}  {r['path']}")


@fs_group.command("du")
@click.argument("path", default=".")
@json_option
@click.pass_context
def du(ctx: click.Context, path: str, as_json: bool) -> None:
    """Size and file/directory counts of a tree."""
    r = with_progress(ctx, "fs.du", "scanning", as_json, path=absolute(path))
    if as_json:
        print_json(r)
        return
    click.echo(pairs([("path", r["path"]), ("size", f"{human_bytes(r['size'])} "
                                                    f"({r['size']} bytes)"),
                      ("on disk", human_bytes(r["disk_bytes"])), ("files", r["files"]),
                      ("dirs", r["dirs"]), ("symlinks", r["symlinks"]),
                      ("other", r["others"]), ("unreadable", r["errors"])]))


def _size(value: str | None) -> int | None:
    """``"10M"``, ``"4k"``, ``"123"`` -> bytes (1024-based, as the monitor's sizes)."""
    if value is None:
        return None
    try:
        return int(parse_bytes(value))
    except ValueError:
        raise click.BadParameter(f"not a size: {value!r}") from None


@fs_group.command("find")
@click.argument("path", default=".")
@click.option("--name", default=None, help="Glob on the base name, e.g. '*.log'.")
@click.option("--regex", default=None, help="Regular expression searched in the base name.")
@click.option("--type", "kind", type=click.Choice(["file", "dir", "symlink"]), default=None)
@click.option("--min-size", default=None, help="At least this size (e.g. 10M).")
@click.option("--max-size", default=None, help="At most this size.")
@click.option("--newer", "newer_s", type=float, default=None,
              help="Modified within the last N seconds.")
@click.option("--limit", type=int, default=None, help="At most this many results.")
@json_option
@click.pass_context
def find(ctx: click.Context, path: str, name: str | None, regex: str | None, kind: str | None,
         min_size: str | None, max_size: str | None, newer_s: float | None, limit: int | None,
         as_json: bool) -> None:
    """Find files by name, type, size or age."""
    since = time.time() - newer_s if newer_s is not None else None
    r = with_progress(ctx, "fs.find", "searching", as_json, path=absolute(path), name=name,
                      regex=regex, type=kind, min_size=_size(min_size),
                      max_size=_size(max_size), modified_since=since, limit=limit)
    if as_json:
        print_json(r)
        return
    click.echo(table([[e["type"], human_bytes(e["size"]), when(e["mtime_at"]), e["path"]]
                      for e in r["entries"]], ["TYPE", "SIZE", "MODIFIED", "PATH"],
                     right=(1,)))
    if r["truncated"]:
        click.echo(f"(stopped at {len(r['entries'])} results; use --limit)", err=True)


@fs_group.command("tail")
@click.argument("path")
@click.option("-n", "--lines", type=int, default=10, show_default=True)
@click.option("-f", "--follow", is_flag=True, help="Keep printing what is appended "
                                                    "(watch.add), until Ctrl-C.")
@json_option
@click.pass_context
def tail(ctx: click.Context, path: str, lines: int, follow: bool, as_json: bool) -> None:
    """Print the last lines of a file."""
    target = absolute(path)
    r = call(ctx, "fs.tail", path=target, lines=lines)
    if as_json and not follow:
        print_json(r)
        return
    for line in r["lines"]:
        click.echo(line)
    if follow:
        _follow(ctx, target, r["size"])


def _follow(ctx: click.Context, path: str, offset: int) -> None:
    """Print bytes appended to ``path`` from ``offset`` on each change event."""
    out = sys.stdout.buffer
    with connected(ctx, timeout=None) as client:
        sub = client.subscribe("watch.add", paths=[path], events=["created", "modified"])
        try:
            for event in sub:
                if event.get("method") not in ("watch.event", "watch.overflow"):
                    continue
                offset = _print_from(client.call, path, offset, out)
                out.flush()
        except KeyboardInterrupt:
            pass
        finally:
            sub.close()


def _print_from(call_: Callable[..., Any], path: str, offset: int, out: Any) -> int:
    size = call_("fs.stat", path=path)["size"]
    if size < offset:  # truncated or replaced: start over
        offset = 0
    while offset < size:
        r = call_("fs.read", path=path, offset=offset, length=min(CAT_CHUNK_BYTES,
                                                                  size - offset))
        if not r["length"]:
            break
        out.write(r["data"])
        offset += r["length"]
    return offset


@fs_group.command("chmod")
@click.argument("mode")
@click.argument("path")
@json_option
@click.pass_context
def chmod(ctx: click.Context, mode: str, path: str, as_json: bool) -> None:
    """Set permission bits (octal, e.g. 644)."""
    r = call(ctx, "fs.chmod", path=absolute(path), mode=mode)
    if as_json:
        print_json(r)
        return
    click.echo(f"{r['path']}: {r['mode']:04o}")
