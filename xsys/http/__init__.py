"""The HTTP gateway: Prometheus ``/metrics``, ``/health`` and the REST mirror of the
router (``POST /api/v1/<method>``), served by aiohttp on the same loop."""
