"""``make test-all``: the Python suite on every supported CPython (3.10 to the newest)
that is on ``PATH`` (pyenv's versions are put there by the Makefile); a version that is
missing is skipped by nox with a note."""

from __future__ import annotations

import nox

nox.options.error_on_missing_interpreters = False
nox.options.reuse_existing_virtualenvs = True

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """pytest on one interpreter (pass pytest arguments after ``--``)."""
    session.install("-e", ".[dev]")
    session.run("pytest", "-q", "-p", "no:cacheprovider", *session.posargs)
