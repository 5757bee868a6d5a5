"""Alert delivery: the ``Alert`` model, the dispatcher (one bounded lane per provider with its
own concurrency, retries on timers and a circuit breaker, routing by levels/rules) and
one module per notification provider."""

from xsys.alerts.model import Alert, HostContext, Severity, Status

__all__ = ["Alert", "HostContext", "Severity", "Status"]
