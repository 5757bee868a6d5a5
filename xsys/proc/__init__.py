"""Supervised worker processes (the ``proc`` namespace): groups of identical children
started, restarted, limited and stopped by the daemon (``xsys.proc.service``)."""
