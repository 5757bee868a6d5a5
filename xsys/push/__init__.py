"""Push mode (issue 15): the daemon dials out to WebSocket backends and streams snapshots,
alerts and check states to them (``xsys.push.service.PushService``; config section
``push``, ``xsys.push.config``; ``push.status`` over IPC; ``xsys_push_*`` metrics).

The package itself imports nothing: ``xsys.config`` loads ``xsys.push.config`` at the
ground level, and the service (which needs the snapshot hub) must not come with it."""
