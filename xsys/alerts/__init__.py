"""Alert delivery: the ``Alert`` model, the dispatcher (bounded queue, worker pool, retries,
per-provider routing) and one module per notification provider."""

from xsys.alerts.model import Alert, HostContext, Severity, Status

__all__ = ["Alert", "HostContext", "Severity", "Status"]
