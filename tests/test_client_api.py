"""The Python client as a newcomer uses it: namespace methods by position and by name,
and the exceptions importable from ``xsys``."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys

import pytest

import xsys
from tests.conftest import DaemonHandle
from xsys.client import Client


def test_process_by_position_and_by_name(daemon: DaemonHandle) -> None:
    with Client(daemon.socket) as c:
        by_position = c.sys.process(os.getpid())
        by_name = c.sys.process(pid=os.getpid())
        assert by_position["pid"] == by_name["pid"] == os.getpid()
        rows = c.sys.processes("memory", 2)["processes"]  # sort, limit by position
        assert len(rows) == 2
        assert rows[0]["memory_percent"] >= rows[1]["memory_percent"]
        with pytest.raises(xsys.NotFound):
            c.sys.process(2147483646)


def test_signatures_follow_the_registry() -> None:
    """Every wrapper: required parameters first, then optional ones, all positional or
    keyword; the call's own options keyword-only; a docstring and a return type."""
    from xsys.client import _methods
    from xsys.client._core import NamespaceBase

    classes = [c for c in vars(_methods).values()
               if isinstance(c, type) and issubclass(c, NamespaceBase) and c.namespace]
    assert len(classes) >= 14  # sync and async, seven namespaces
    for cls in classes:
        for name, fn in vars(cls).items():
            if name.startswith("_") or not inspect.isfunction(fn):
                continue
            sig = inspect.signature(fn)
            params = list(sig.parameters.values())[1:]
            kinds = [p.kind for p in params]
            assert kinds == sorted(kinds), (cls.namespace, name, kinds)
            for p in params:
                if p.name in ("timeout", "on_progress"):
                    assert p.kind is inspect.Parameter.KEYWORD_ONLY, (name, p)
                else:
                    assert p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD, (name, p)
            assert fn.__doc__ and sig.return_annotation is not inspect.Signature.empty


@pytest.mark.parametrize("name", ["DaemonNotRunning", "ConnectionClosed", "NotFound",
                                  "InvalidParams", "PermissionDenied", "Unauthorized",
                                  "UntrustedServer", "Overloaded", "TooLarge", "XsysError",
                                  "MethodNotFound", "AlreadyExists", "Conflict"])
def test_exceptions_importable_from_xsys(name: str) -> None:
    import xsys.protocol

    assert getattr(xsys, name) is getattr(xsys.protocol, name)
    assert name in xsys.__all__


def test_import_xsys_is_light() -> None:
    code = ("import sys, xsys; from xsys import DaemonNotRunning; "
            "import xsys as x; assert 'asyncio' not in sys.modules, 'asyncio'; "
            "print(DaemonNotRunning.__name__)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "DaemonNotRunning"
    r = subprocess.run([sys.executable, "-c", "import sys, xsys; print('msgpack' in "
                        "sys.modules)"], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "False"
