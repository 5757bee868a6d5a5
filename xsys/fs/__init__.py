"""Sandboxed file operations for the ``fs`` namespace: ``Sandbox`` (path confinement to
the configured roots), ``FsService`` (the operations) and their result types."""

from xsys.fs.model import Job, NullJob
from xsys.fs.sandbox import Resolved, Sandbox, default_roots
from xsys.fs.service import FsService
from xsys.fs.tree import FindQuery

__all__ = ["FindQuery", "FsService", "Job", "NullJob", "Resolved", "Sandbox", "default_roots"]
