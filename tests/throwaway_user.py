"""A second local user for tests about uids: ``throwaway_user()`` creates one with
``useradd`` (a system user with its own group, no home, no login shell) and removes it
afterwards. Tests that need it skip, with the reason, when not root or without useradd.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class User:
    """A local user: ``name``, ``uid`` and primary ``gid``."""

    name: str
    uid: int
    gid: int

    def popen_kwargs(self) -> dict[str, object]:
        """``subprocess.Popen`` keyword arguments that run the child as this user."""
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def skip_unless_root_with_useradd() -> None:
    """``pytest.skip`` with the reason when a throwaway user cannot be created here."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("needs root to create a second local user (useradd)")
    if shutil.which("useradd") is None or shutil.which("userdel") is None:
        pytest.skip("useradd/userdel not installed")


@contextmanager
def throwaway_user() -> Iterator[User]:
    """Create a user named ``xsys-t<random>``, yield it, then delete it (and its group)."""
    skip_unless_root_with_useradd()
    import pwd

    name = f"xsys-t{uuid.uuid4().hex[:10]}"
    subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                    "--shell", "/usr/sbin/nologin", name],
                   check=True, capture_output=True, timeout=60)
    try:
        entry = pwd.getpwnam(name)
        yield User(name, entry.pw_uid, entry.pw_gid)
    finally:
        subprocess.run(["userdel", name], capture_output=True, timeout=60)
