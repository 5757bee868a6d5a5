"""Sandboxed file operations for the ``fs`` namespace: ``sandbox.Sandbox`` (path
confinement to the configured roots), ``service.FsService`` (the operations), their result
types (``model``) and the ``fs`` config section (``config.FsConfig``).

The package imports nothing itself, so that ``xsys.config`` can import ``xsys.fs.config``
(ground) without loading the file operations."""
