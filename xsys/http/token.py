"""The REST mirror's bearer token: where it lives, how it is created and how it is read.

When ``http.token`` is unset the daemon generates one at first start
(``secrets.token_urlsafe(32)``, 43 characters) into ``http.token_file``, by default
``<state dir>/http-token`` (``state_dir``). The file is created race-free: the state
directory is opened with ``O_DIRECTORY|O_NOFOLLOW`` and every later step is relative to
that descriptor; the token goes into a temp file created ``O_CREAT|O_EXCL|O_NOFOLLOW``
with mode 0600, is fsynced and then hard-linked to the final name (``link`` never
replaces, so a concurrent start or a planted file is noticed, never overwritten). An
existing file is used only when it is a regular file owned by the daemon's uid with no
group/other permission bits. Everything here is blocking: run it in the thread pool.
"""

from __future__ import annotations

import contextlib
import errno
import hmac
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

TOKEN_FILE_NAME = "http-token"
#: Bytes of randomness in a generated token (``secrets.token_urlsafe``).
TOKEN_ENTROPY_BYTES = 32
#: A token file larger than this is not a token file.
MAX_TOKEN_FILE_BYTES = 4096


class TokenFileError(ValueError):
    """The token file or its directory is unsafe or unreadable; the message is one line
    that names the path and what is wrong."""


def state_dir(uid: int | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """The daemon's state directory for ``uid`` (default: the effective uid):
    ``/var/lib/xsys`` for root, else ``$XDG_STATE_HOME/xsys`` (when set and absolute) or
    ``~/.local/state/xsys``."""
    uid = os.geteuid() if uid is None else uid
    env = os.environ if environ is None else environ
    if uid == 0:
        return Path("/var/lib/xsys")
    xdg = env.get("XDG_STATE_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "xsys"
    home = env.get("HOME") or str(Path("~").expanduser())
    return Path(home) / ".local" / "state" / "xsys"


def token_file_path(configured: str, uid: int | None = None,
                    environ: Mapping[str, str] | None = None) -> Path:
    """``http.token_file`` when set (``~`` expanded), else ``state_dir() / http-token``."""
    if configured:
        return Path(configured).expanduser()
    return state_dir(uid, environ) / TOKEN_FILE_NAME


def tokens_equal(given: str, expected: str) -> bool:
    """Constant-time comparison (``hmac.compare_digest`` on the UTF-8 bytes)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"),
                               expected.encode("utf-8", "surrogateescape"))


def _open_dir(path: Path, uid: int, create: bool) -> int:
    """Open (creating with 0700 when ``create``) the directory ``path`` without following
    a symlink at its last component, and check it is owned by ``uid`` or root with no
    group/other write bit. Returns the descriptor."""
    if create:
        try:
            os.makedirs(path, mode=0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise TokenFileError(f"{path}: cannot create the state directory: "
                                 f"{exc.strerror}") from None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        what = "is a symlink" if exc.errno == errno.ELOOP else exc.strerror
        raise TokenFileError(f"{path}: cannot open the token directory: {what}") from None
    st = os.fstat(fd)
    if st.st_uid not in (uid, 0) or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        os.close(fd)
        raise TokenFileError(
            f"{path}: the token directory must be owned by uid {uid} (or root) and not "
            f"writable by group/others (owner uid {st.st_uid}, mode "
            f"{stat.S_IMODE(st.st_mode):04o})")
    return fd


def _read_checked(fd: int, path: Path, uid: int) -> str:
    """The token in the open file ``fd`` after checking type, owner and mode."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise TokenFileError(f"{path}: the token file is not a regular file")
    if st.st_uid != uid:
        raise TokenFileError(f"{path}: the token file is owned by uid {st.st_uid}, "
                             f"not the daemon's uid {uid}")
    if st.st_mode & 0o077:
        raise TokenFileError(f"{path}: the token file has mode "
                             f"{stat.S_IMODE(st.st_mode):04o}; it must be 0600 (chmod 600)")
    if st.st_size > MAX_TOKEN_FILE_BYTES:
        raise TokenFileError(f"{path}: the token file is {st.st_size} bytes; not a token")
    raw = os.read(fd, MAX_TOKEN_FILE_BYTES + 1)
    try:
        token = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise TokenFileError(f"{path}: the token file is not UTF-8 text") from None
    if len(token) < 16 or any(c.isspace() for c in token):
        raise TokenFileError(f"{path}: the token file must hold one token of at least 16 "
                             "characters")
    return token


def load_or_create_token(path: Path, uid: int | None = None) -> tuple[str, bool]:
    """The token in ``path``, generating it first when the file does not exist:
    ``(token, created)``. Creates the parent directory (0700) when missing.

    Raises ``TokenFileError`` when the directory or the file is unsafe (a symlink, not a
    regular file, another owner, group/other bits) or unreadable.
    """
    uid = os.geteuid() if uid is None else uid
    name = path.name
    dfd = _open_dir(path.parent, uid, create=True)
    try:
        for _attempt in range(3):
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
                             | os.O_NONBLOCK, dir_fd=dfd)
            except FileNotFoundError:
                pass
            except OSError as exc:
                what = "is a symlink" if exc.errno == errno.ELOOP else exc.strerror
                raise TokenFileError(f"{path}: cannot open the token file: {what}") from None
            else:
                try:
                    return _read_checked(fd, path, uid), False
                finally:
                    os.close(fd)
            token = secrets.token_urlsafe(TOKEN_ENTROPY_BYTES)
            if _create(dfd, name, token, path):
                return token, True
            # someone else created it between our open and link: read theirs (checked)
        raise TokenFileError(f"{path}: the token file keeps changing; refusing to use it")
    finally:
        os.close(dfd)


def _create(dfd: int, name: str, token: str, path: Path) -> bool:
    """Write ``token`` to a new 0600 temp file and link it to ``name``; False when
    ``name`` appeared meanwhile."""
    tmp = f".{name}.{secrets.token_hex(8)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(tmp, flags, 0o600, dir_fd=dfd)
    except OSError as exc:
        raise TokenFileError(f"{path}: cannot create the token file: {exc.strerror}") from None
    try:
        try:
            os.fchmod(fd, 0o600)  # in case the umask removed bits we did not want anyway
            os.write(fd, (token + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd, follow_symlinks=False)
        except FileExistsError:
            return False
        except OSError as exc:
            raise TokenFileError(f"{path}: cannot create the token file: "
                                 f"{exc.strerror}") from None
        with contextlib.suppress(OSError):
            os.fsync(dfd)
        return True
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dfd)


def read_token(path: Path) -> str:
    """The token in ``path`` for the CLI (``xsys http token``): opened without following
    symlinks; raises ``TokenFileError`` (one line: missing, unreadable, unsafe)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        raise TokenFileError(
            f"{path}: no token file (the daemon creates it at start when http.enabled and "
            "http.api are true and http.token is unset)") from None
    except PermissionError:
        raise TokenFileError(
            f"{path}: permission denied (the token file is readable only by the daemon's "
            "user; run this as that user)") from None
    except OSError as exc:
        what = "is a symlink" if exc.errno == errno.ELOOP else exc.strerror
        raise TokenFileError(f"{path}: cannot open the token file: {what}") from None
    try:
        return _read_checked(fd, path, os.fstat(fd).st_uid)
    finally:
        os.close(fd)
