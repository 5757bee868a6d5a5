"""Service checks: probes (tcp, http, process, command, docker), their states, restarts
with backoff, and the views behind ``checks.*``, ``/health`` and ``xsys_check_*``."""
