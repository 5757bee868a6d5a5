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
    CliState,
    human_bytes,
    human_time,
    json_option,
    method_command,
    pairs,
    pass_state,
    table,
)
from xsys.cli.lazy import XsysGroup
from xsys.protocol import TooLarge
from xsys.units import parse_bytes

#: Bytes per ``fs.read`` while ``cat`` streams a file.
CAT_CHUNK_BYTES = 4 * 1024 * 1024

Result = dict[str, Any]


def absolute(path: str) -> str:
    """``path`` made absolute against the CLI's working directory (``~`` expanded)."""
    return os.path.abspath(os.path.expanduser(path))


def _absolute(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    """Click callback: a path argument made absolute (``absolute``)."""
    return absolute(value)


def _all_absolute(_ctx: click.Context, _param: click.Parameter,
                  value: tuple[str, ...]) -> tuple[str, ...]:
    """Click callback: ``nargs=-1`` path arguments made absolute."""
    return tuple(absolute(v) for v in value)


def when(ts: float | None) -> str:
    """Epoch seconds as local ISO-8601 (``xsys.units.format_time``)."""
    return human_time(ts)


def mode_string(kind: str, mode: int) -> str:
    """``("dir", 0o755)`` -> ``drwxr-xr-x``."""
    bits = {"dir": stat_mod.S_IFDIR, "symlink": stat_mod.S_IFLNK, "fifo": stat_mod.S_IFIFO,
            "socket": stat_mod.S_IFSOCK, "char_device": stat_mod.S_IFCHR,
            "block_device": stat_mod.S_IFBLK}.get(kind, stat_mod.S_IFREG)
    return stat_mod.filemode(bits | mode)


@click.group("fs", cls=XsysGroup)
def fs_group() -> None:
    """Files through the daemon, confined to its fs.roots."""


# ------------------------------------------------------------------------- renderers


def render_list(r: Result) -> str:
    """``fs.list``: mode, size, mtime and name (``/`` after dirs, ``-> target`` for
    symlinks)."""
    rows = []
    for e in r["entries"]:
        name = e["name"] + ("/" if e["type"] == "dir" else "")
        if e.get("symlink_target"):
            name += f" -> {e['symlink_target']}"
        rows.append([mode_string(e["type"], e["mode"]), human_bytes(e["size"]),
                     when(e["mtime_at"]), name])
    return table(rows, ["MODE", "SIZE", "MODIFIED", "NAME"], right=(1,), fit=None)


def list_notes(r: Result) -> list[str]:
    """``fs.list``: say so on stderr when the listing was cut short."""
    return [f"(truncated at {len(r['entries'])} entries; use --limit)"] if r["truncated"] else []


def render_stat(r: Result) -> str:
    """``fs.stat``: one line per field."""
    items = [("path", r["path"]), ("type", r["type"]),
             ("size", f"{r['size']} ({human_bytes(r['size'])})"),
             ("mode", f"{mode_string(r['type'], r['mode'])} ({r['mode']:04o})"),
             ("owner", f"uid {r['uid']}, gid {r['gid']}"), ("links", r["nlink"]),
             ("inode", r["inode"]), ("modified", when(r["mtime_at"])),
             ("accessed", when(r["atime_at"])), ("changed", when(r["ctime_at"]))]
    if r.get("symlink_target") is not None:
        items.append(("target", r["symlink_target"]))
    return pairs(items)


def render_write(r: Result) -> str:
    """``fs.write``: what was written where."""
    verb = {"append": "appended", "create": "created"}.get(r["mode"], "wrote")
    return f"{verb} {r['written_bytes']} bytes to {r['path']} (now {r['size']} bytes)"


def render_transfer(r: Result) -> str:
    """``fs.copy`` / ``fs.move``: ``src -> dst`` and what was carried."""
    what = f"{r['files']} files, {r['dirs']} dirs, {human_bytes(r['copied_bytes'])}"
    if r.get("renamed"):
        what = "renamed"
    return f"{r['src']} -> {r['dst']} ({what})"


def render_remove(r: Result) -> str:
    """``fs.remove``: the path, and the counts for a tree."""
    return f"removed {r['path']}" + (f" ({r['files']} files, {r['dirs']} dirs)"
                                      if r["dirs"] else "")


def render_mkdir(r: Result) -> str:
    """``fs.mkdir``: created or already there."""
    return f"{'created' if r['created'] else 'exists'} {r['path']}"


def render_hash(r: Result) -> str:
    """``fs.hash``: ``digest  path`` like sha256sum."""
    return f"{r['digest']}  {r['path']}"


def render_du(r: Result) -> str:
    """``fs.du``: sizes and counts."""
    return pairs([("path", r["path"]), ("size", f"{human_bytes(r['size'])} "
                                                f"({r['size']} bytes)"),
                  ("on disk", human_bytes(r["disk_bytes"])), ("files", r["files"]),
                  ("dirs", r["dirs"]), ("symlinks", r["symlinks"]),
                  ("other", r["others"]), ("unreadable", r["errors"])])


def render_find(r: Result) -> str:
    """``fs.find``: type, size, mtime and path of each match."""
    return table([[e["type"], human_bytes(e["size"]), when(e["mtime_at"]), e["path"]]
                  for e in r["entries"]], ["TYPE", "SIZE", "MODIFIED", "PATH"], right=(1,),
                 fit=None)


def find_notes(r: Result) -> list[str]:
    """``fs.find``: say so on stderr when the search stopped at the limit."""
    return [f"(stopped at {len(r['entries'])} results; use --limit)"] if r["truncated"] else []


def render_tail(r: Result) -> str | None:
    """``fs.tail``: the lines (nothing for none)."""
    return "\n".join(r["lines"]) if r["lines"] else None


def render_chmod(r: Result) -> str:
    """``fs.chmod``: the path and its new mode in octal."""
    return f"{r['path']}: {r['mode']:04o}"


# -------------------------------------------------------------------------- commands


@method_command(fs_group, "ls", "fs.list", render_list, notes=list_notes)
@click.argument("path", callback=_absolute, default=".")
@click.option("-r", "--recursive", is_flag=True, help="Descend into subdirectories.")
@click.option("-a", "--all", "include_hidden", is_flag=True, help="Include dot files.")
@click.option("--glob", default=None, help="Only names matching this pattern.")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="At most this many entries (the first by name).")
def ls(**params: Any) -> None:
    """List a directory."""


@method_command(fs_group, "stat", "fs.stat", render_stat)
@click.argument("path", callback=_absolute)
def stat(**params: Any) -> None:
    """Metadata of a file, directory or symlink."""


@fs_group.command("cat")
@click.argument("path", callback=_absolute)
@click.option("--offset", type=click.IntRange(min=0), default=0, help="First byte.")
@click.option("--length", type=click.IntRange(min=0), default=None,
              help="Bytes to print (default: all).")
@pass_state
def cat(state: CliState, path: str, offset: int, length: int | None) -> None:
    """Print a file (streamed in pieces, so any size works)."""
    out = sys.stdout.buffer
    remaining = length
    piece = CAT_CHUNK_BYTES
    with state.connected() as client:
        if not state.local and _cat_descriptor(client, path, offset, length, out):
            return
        while remaining is None or remaining > 0:
            want = piece if remaining is None else min(piece, remaining)
            try:
                r = client.call("fs.read", path=path, offset=offset, length=want)
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


def _cat_descriptor(client: Any, path: str, offset: int, length: int | None,
                    out: Any) -> bool:
    """``cat`` through ``fs.open``: the daemon passes the checked file's descriptor and the
    kernel copies it to stdout (``sendfile``), at ``cat``'s own speed. False when the
    daemon cannot pass descriptors (older daemon, no Unix socket): use ``fs.read``."""
    from xsys.protocol import Conflict, MethodNotFound

    try:
        f = client.fs.open(path)
    except (MethodNotFound, Conflict) as exc:
        if isinstance(exc, Conflict) and (exc.data or {}).get("reason") not in (
                "no_descriptor_passing",):
            raise
        return False
    with f:
        out.flush()
        try:
            dst: int | None = out.fileno()
        except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation: a test's
            dst = None
        end = None if length is None else offset + length
        pos = offset
        try:
            while dst is not None and (end is None or pos < end):
                want = 1 << 30 if end is None else min(1 << 30, end - pos)
                n = os.sendfile(dst, f.fileno(), pos, want)
                if not n:
                    break
                pos += n
        except OSError:  # stdout is not something sendfile writes to
            dst = None
        if dst is None:  # copy in pieces
            f.seek(pos)
            while end is None or pos < end:
                data = f.read(CAT_CHUNK_BYTES if end is None else min(CAT_CHUNK_BYTES,
                                                                       end - pos))
                if not data:
                    break
                out.write(data)
                pos += len(data)
    out.flush()
    return True


@method_command(fs_group, "write", "fs.write", render_write)
@click.argument("path", callback=_absolute)
@click.option("--data", default=None, help="Content (default: read stdin).")
@click.option("--append", "mode", flag_value="append", help="Append instead of replacing.")
@click.option("--create", "mode", flag_value="create", help="Fail if the file exists.")
@click.option("--overwrite", "mode", flag_value="overwrite", default=True,
              help="Replace atomically (default).")
@click.option("-p", "--make-parents", is_flag=True, help="Create missing directories.")
@click.option("--expected-sha256", default=None,
              help="Only write if the current content has this sha256.")
def write(data: str | None, **params: Any) -> Result:
    """Write a file from --data or stdin (create, atomic overwrite, or append)."""
    payload: bytes = data.encode() if data is not None else sys.stdin.buffer.read()
    return {**params, "data": payload}


def _into_dir(state: CliState, src: str, dst: str) -> str:
    """``cp``/``mv`` convenience: a destination that is an existing directory (or ends in
    ``/``) receives ``src`` under its own name."""
    if dst.endswith(os.sep):
        return os.path.join(dst, os.path.basename(src.rstrip(os.sep)))
    r = state.call("fs.exists", {"path": dst})
    if r["exists"] and r["type"] == "dir":
        return os.path.join(dst, os.path.basename(src.rstrip(os.sep)))
    return dst


def _endpoints(state: CliState, src: str, dst: str) -> dict[str, str]:
    """``src`` and ``dst`` made absolute, ``dst`` resolved by ``_into_dir``."""
    s = absolute(src)
    return {"src": s, "dst": _into_dir(state, s, absolute(dst) + (os.sep if dst.endswith(
        os.sep) else ""))}


@method_command(fs_group, "cp", "fs.copy", render_transfer, progress="copying")
@click.argument("src")
@click.argument("dst")
@click.option("-f", "--overwrite", is_flag=True, help="Replace existing files.")
@click.option("-p", "--preserve", is_flag=True, help="Keep timestamps.")
@pass_state
def cp(state: CliState, src: str, dst: str, overwrite: bool, preserve: bool) -> Result:
    """Copy a file or directory tree (into DST when it is a directory)."""
    return {**_endpoints(state, src, dst), "overwrite": overwrite, "preserve": preserve}


@method_command(fs_group, "mv", "fs.move", render_transfer, progress="moving")
@click.argument("src")
@click.argument("dst")
@click.option("-f", "--overwrite", is_flag=True, help="Replace an existing destination.")
@pass_state
def mv(state: CliState, src: str, dst: str, overwrite: bool) -> Result:
    """Move or rename (into DST when it is a directory)."""
    return {**_endpoints(state, src, dst), "overwrite": overwrite}


@method_command(fs_group, "rm", "fs.remove", render_remove)
@click.argument("paths", nargs=-1, required=True, callback=_all_absolute)
@click.option("-r", "--recursive", is_flag=True, help="Remove directories and their content.")
def rm(paths: tuple[str, ...], recursive: bool) -> list[Result]:
    """Remove files, symlinks or directories."""
    return [{"path": p, "recursive": recursive} for p in paths]


@method_command(fs_group, "mkdir", "fs.mkdir", render_mkdir)
@click.argument("path", callback=_absolute)
@click.option("-p", "--parents", is_flag=True, help="Make parents; fine if it exists.")
def mkdir(**params: Any) -> None:
    """Create a directory."""


@method_command(fs_group, "hash", "fs.hash", render_hash,
                progress=lambda params: os.path.basename(params["path"]))
@click.argument("paths", nargs=-1, required=True, callback=_all_absolute)
@click.option("-a", "--algorithm", type=click.Choice(["sha256", "sha1", "md5", "blake2b"]),
              default="sha256", show_default=True)
def hash_(paths: tuple[str, ...], algorithm: str) -> list[Result]:
    """Hash files (prints ``digest  path`` like sha256sum)."""
    return [{"path": p, "algorithm": algorithm} for p in paths]


@method_command(fs_group, "du", "fs.du", render_du, progress="scanning")
@click.argument("path", callback=_absolute, default=".")
def du(**params: Any) -> None:
    """Size and file/directory counts of a tree."""


def _size(value: str | None) -> int | None:
    """``"10M"``, ``"4k"``, ``"123"`` -> bytes (1024-based, as the monitor's sizes)."""
    if value is None:
        return None
    try:
        return int(parse_bytes(value))
    except ValueError:
        raise click.BadParameter(f"not a size: {value!r}") from None


@method_command(fs_group, "find", "fs.find", render_find, progress="searching",
                notes=find_notes)
@click.argument("path", callback=_absolute, default=".")
@click.option("--name", default=None, help="Glob on the base name, e.g. '*.log'.")
@click.option("--regex", default=None, help="Regular expression searched in the base name.")
@click.option("--type", "kind", type=click.Choice(["file", "dir", "symlink"]), default=None)
@click.option("--min-size", default=None, help="At least this size (e.g. 10M).")
@click.option("--max-size", default=None, help="At most this size.")
@click.option("--newer", "newer_s", type=click.FloatRange(min=0), default=None,
              help="Modified within the last N seconds.")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="At most this many results.")
def find(path: str, name: str | None, regex: str | None, kind: str | None,
         min_size: str | None, max_size: str | None, newer_s: float | None,
         limit: int | None) -> Result:
    """Find files by name, type, size or age."""
    since = time.time() - newer_s if newer_s is not None else None
    return {"path": path, "name": name, "regex": regex, "type": kind,
            "min_size": _size(min_size), "max_size": _size(max_size),
            "modified_since": since, "limit": limit}


@fs_group.command("tail")
@click.argument("path", callback=_absolute)
@click.option("-n", "--lines", type=click.IntRange(min=0), default=10, show_default=True)
@click.option("-f", "--follow", is_flag=True, help="Keep printing what is appended "
                                                    "(watch.add), until Ctrl-C.")
@json_option
@pass_state
def tail(state: CliState, path: str, lines: int, follow: bool) -> None:
    """Print the last lines of a file."""
    r = state.call("fs.tail", {"path": path, "lines": lines})
    if follow:
        state.as_json = False  # what follows is the file's own bytes: the lines as text too
    state.emit(r, render_tail)
    if follow:
        _follow(state, path, r["size"])


def _follow(state: CliState, path: str, offset: int) -> None:
    """Print bytes appended to ``path`` from ``offset`` on each change event."""
    out = sys.stdout.buffer
    with state.connected(timeout=None) as client:
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


@method_command(fs_group, "chmod", "fs.chmod", render_chmod)
@click.argument("mode")
@click.argument("path", callback=_absolute)
def chmod(**params: Any) -> None:
    """Set permission bits (octal, e.g. 644)."""


# ------------------------------------------------------------------------- links, times


def render_touch(r: Result) -> str:
    """``fs.touch``: the path and its new mtime."""
    return f"{'created' if r['created'] else 'touched'} {r['path']} (mtime {when(r['mtime_at'])})"


def render_link(r: Result) -> str:
    """``fs.link``: ``path -> target`` (``=>`` for a hard link)."""
    return f"{r['path']} {'->' if r['symbolic'] else '=>'} {r['target']}"


def render_readlink(r: Result) -> str:
    """``fs.readlink``: the target alone, like readlink(1)."""
    return str(r["target"])


def render_realpath(r: Result) -> str:
    """``fs.realpath``: the resolved path alone, like realpath(1)."""
    return str(r["path"])


def _epoch(value: str | None) -> float | None:
    """``--mtime``: epoch seconds, or an ISO 8601 date/time (local time without zone)."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    import datetime as dt

    try:
        return dt.datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise click.BadParameter(f"not epoch seconds or an ISO date: {value!r}") from None


@method_command(fs_group, "touch", "fs.touch", render_touch)
@click.argument("paths", nargs=-1, required=True, callback=_all_absolute)
@click.option("--mtime", default=None, help="Modification time (epoch seconds or ISO date).")
@click.option("--atime", default=None, help="Access time (epoch seconds or ISO date).")
@click.option("-p", "--make-parents", is_flag=True, help="Create missing directories.")
def touch(paths: tuple[str, ...], mtime: str | None, atime: str | None,
          make_parents: bool) -> list[Result]:
    """Create files or set their times (default: now)."""
    return [{"path": p, "mtime_at": _epoch(mtime), "atime_at": _epoch(atime),
             "make_parents": make_parents} for p in paths]


@method_command(fs_group, "ln", "fs.link", render_link)
@click.argument("target")
@click.argument("path", callback=_absolute)
@click.option("-s", "--symbolic", is_flag=True, help="Make a symbolic link (else hard).")
def ln(target: str, path: str, symbolic: bool) -> Result:
    """Make PATH a link to TARGET (a symlink's TARGET is stored as given, like ln -s)."""
    return {"target": target if symbolic else absolute(target), "path": path,
            "symbolic": symbolic}


@method_command(fs_group, "readlink", "fs.readlink", render_readlink)
@click.argument("path", callback=_absolute)
def readlink(**params: Any) -> None:
    """Print a symlink's target."""


@method_command(fs_group, "realpath", "fs.realpath", render_realpath)
@click.argument("path", callback=_absolute)
def realpath(**params: Any) -> None:
    """Print the path with every symlink resolved."""


# ------------------------------------------------------------------------- grep, archives


def render_grep(r: Result) -> str:
    """``fs.grep``: ``path:line:text`` per match (context lines with ``-``)."""
    out: list[str] = []
    for m in r["matches"]:
        n = m["line_number"]
        for i, line in enumerate(m["before"]):
            out.append(f"{m['path']}-{n - len(m['before']) + i}-{line}")
        out.append(f"{m['path']}:{n}:{m['line']}")
        for i, line in enumerate(m["after"]):
            out.append(f"{m['path']}-{n + 1 + i}-{line}")
    return "\n".join(out)


def grep_notes(r: Result) -> list[str]:
    """Truncation and skipped files."""
    notes = []
    if r["truncated"]:
        notes.append(f"(stopped at {len(r['matches'])} matches; use --limit)")
    if r["timed_out"]:
        notes.append(f"({len(r['timed_out'])} file(s) took too long and were cut short)")
    return notes


def grep_exit(r: Result) -> int:
    """Exit 1 without a match, as grep(1) does."""
    return 0 if r["matches"] else 1


@method_command(fs_group, "grep", "fs.grep", render_grep, progress="searching",
                notes=grep_notes, exit_code=grep_exit)
@click.argument("pattern")
@click.argument("path", callback=_absolute, default=".")
@click.option("-F", "--fixed-strings", "fixed", is_flag=True, help="PATTERN is literal text.")
@click.option("-i", "--ignore-case", is_flag=True)
@click.option("--glob", default=None, help="Only files matching this pattern, e.g. '*.py'.")
@click.option("-m", "--max-count", type=int, default=None, help="Matches per file.")
@click.option("--max-filesize", default=None, help="Skip larger files (e.g. 10M).")
@click.option("-C", "--context", type=int, default=0, help="Lines of context.")
@click.option("--gitignore", is_flag=True, help="Honour .gitignore files.")
@click.option("--limit", type=int, default=None, help="At most this many matches.")
def grep(pattern: str, path: str, fixed: bool, ignore_case: bool, glob: str | None,
         max_count: int | None, max_filesize: str | None, context: int, gitignore: bool,
         limit: int | None) -> Result:
    """Search file contents below PATH (default: the current directory)."""
    return {"path": path, "pattern": pattern, "fixed": fixed, "ignore_case": ignore_case,
            "glob": glob, "max_count": max_count, "max_filesize": _size(max_filesize),
            "context": context, "gitignore": gitignore, "limit": limit}


def render_archive(r: Result) -> str:
    """``fs.archive``: what went in and the archive's size."""
    return (f"{r['dst']} ({r['format']}, {human_bytes(r['size'])}): {r['files']} files, "
            f"{r['dirs']} dirs, {r['symlinks']} symlinks, {human_bytes(r['input_bytes'])} "
            "read" + (f", {r['skipped']} special files skipped" if r["skipped"] else ""))


def render_extract(r: Result) -> str:
    """``fs.extract``: what came out."""
    return (f"{r['src']} -> {r['dst']} ({r['format']}): {r['files']} files, {r['dirs']} dirs,"
            f" {r['symlinks']} symlinks, {human_bytes(r['output_bytes'])}")


_EXTENSIONS = ((".tar.gz", "tar.gz"), (".tgz", "tar.gz"), (".tar.xz", "tar.xz"),
               (".txz", "tar.xz"), (".zip", "zip"), (".tar", "tar"))


def _format_of(dst: str) -> str:
    """The archive format DST's extension names; a usage error (exit 2) for any other name,
    rather than a tar.gz called ``out.rar``."""
    for ext, fmt in _EXTENSIONS:
        if dst.endswith(ext):
            return fmt
    raise click.BadParameter(
        f"cannot tell the format from {dst!r}: name it "
        f"{', '.join(ext for ext, _ in _EXTENSIONS)} or give --format", param_hint="DST")


@method_command(fs_group, "archive", "fs.archive", render_archive, progress="packing")
@click.argument("dst", callback=_absolute)
@click.argument("paths", nargs=-1, required=True, callback=_all_absolute)
@click.option("--format", "fmt", type=click.Choice(["tar", "tar.gz", "tar.xz", "zip"]),
              default=None, help="Default: from DST's extension (.tar, .tar.gz, .tgz, "
                                 ".tar.xz, .txz, .zip).")
@click.option("-f", "--overwrite", is_flag=True, help="Replace an existing DST.")
def archive(dst: str, paths: tuple[str, ...], fmt: str | None, overwrite: bool) -> Result:
    """Pack PATHS into the archive DST."""
    return {"paths": list(paths), "dst": dst, "format": fmt or _format_of(dst),
            "overwrite": overwrite}


@method_command(fs_group, "extract", "fs.extract", render_extract, progress="unpacking")
@click.argument("src", callback=_absolute)
@click.argument("dst", callback=_absolute, default=".")
@click.option("-f", "--overwrite", is_flag=True, help="Replace files already in DST.")
def extract(**params: Any) -> None:
    """Unpack the archive SRC into the directory DST (created when missing)."""
