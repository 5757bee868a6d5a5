"""Every benchmark runs as its docs say (``.venv/bin/python bench/<name>.py``): Python
puts ``bench/`` first on the path, so a script named like a standard library module (an
earlier ``bench/http.py`` shadowed ``http`` for aiohttp and urllib) breaks the others at
import. ``--help`` runs every import and exits; no script may take a stdlib name."""

from __future__ import annotations

import subprocess
import sys

from tests.launcher import REPO

SCRIPTS = sorted(p for p in (REPO / "bench").glob("*.py") if not p.name.startswith("_"))


def test_every_bench_script_starts() -> None:
    assert len(SCRIPTS) >= 5
    procs = {p.name: subprocess.Popen([sys.executable, str(p), "--help"], cwd=REPO,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for p in SCRIPTS}
    failed = {}
    for name, proc in procs.items():
        _out, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            failed[name] = err.decode(errors="replace")[-400:]
    assert not failed, failed


def test_no_bench_script_takes_a_standard_library_name() -> None:
    taken = sorted(p.name for p in SCRIPTS if p.stem in sys.stdlib_module_names)
    assert not taken, f"bench scripts shadowing the standard library: {taken}"
