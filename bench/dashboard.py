"""The dashboard page: bytes transferred for the page and its assets, and the time to the
first chart point on localhost, measured in a real headless Chromium (Debian
``chromium``) over the DevTools protocol (tests/chromium_support.py).

Each run loads ``/?token=...`` with the browser cache disabled (cold): the redirect, the
page, its CSS and JS; bytes are Chromium's ``encodedDataLength`` per response (headers
included; the WebSocket's frames excluded). Times come from the page's own performance
marks relative to the navigation start: ``xsys-ws-open`` (socket open),
``xsys-first-point`` (first chart point drawn), with ``domContentLoadedEventEnd`` as the
reference measured in the same run. Targets (issue 10): under 300 KB, first chart under
1 s.

Prints a table and writes ``bench/results/dashboard.json`` (``--json-out``).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._daemon import spawned_daemon  # noqa: E402
from bench._stats import percentile, report  # noqa: E402
from tests.chromium_support import Chromium, ChromiumUnavailable  # noqa: E402

TOKEN = "bench-dashboard-token-0123456789"
TARGET_BYTES = 300 * 1024
TARGET_FIRST_POINT_MS = 1000.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def one_run(browser: Chromium, url: str) -> dict[str, Any]:
    """Load the dashboard once (cold cache): bytes per URL and the marks in ms."""
    browser.responses.clear()
    await browser.send("Network.clearBrowserCache")
    await browser.send("Network.clearBrowserCookies")
    await browser.navigate(url)
    await browser.wait_for("performance.getEntriesByName('xsys-first-point').length > 0",
                           timeout_s=30)
    marks = await browser.evaluate(
        "({ws: performance.getEntriesByName('xsys-ws-open')[0].startTime,"
        " first: performance.getEntriesByName('xsys-first-point')[0].startTime,"
        " dcl: performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd})")
    urls: dict[str, str] = {}
    sizes: dict[str, int] = {}
    for r in browser.responses:
        if "url" in r:
            urls[r["requestId"]] = r["url"]
    for r in browser.responses:
        if "encodedDataLength" in r and r["requestId"] in urls:
            name = urlsplit(urls[r["requestId"]]).path
            sizes[name] = sizes.get(name, 0) + int(r["encodedDataLength"])
    # the redirect response (/?token=) has no loadingFinished of its own: the document's
    # request id carries both, so the total is the sum above
    return {"bytes": sizes, "total_bytes": sum(sizes.values()),
            "ws_open_ms": marks["ws"], "first_point_ms": marks["first"],
            "dom_content_loaded_ms": marks["dcl"]}


async def run(runs: int, workdir: Path) -> dict[str, Any]:
    port = _free_port()
    config = {"server": {"socket": str(workdir / "xsys.sock")},
              "http": {"enabled": True, "port": port, "token": TOKEN}}
    url = f"http://127.0.0.1:{port}/?token={TOKEN}"
    with spawned_daemon(config, workdir):
        async with Chromium.launch(workdir / "chromium") as browser:
            await browser.send("Network.setCacheDisabled", cacheDisabled=True)
            await one_run(browser, url)  # warm the daemon's asset cache and the browser
            samples = [await one_run(browser, url) for _ in range(runs)]
    first = [s["first_point_ms"] for s in samples]
    dcl = [s["dom_content_loaded_ms"] for s in samples]
    ws = [s["ws_open_ms"] for s in samples]
    total = max(s["total_bytes"] for s in samples)
    return {
        "runs": runs, "bytes_per_asset": samples[-1]["bytes"], "total_bytes": total,
        "total_bytes_target": TARGET_BYTES,
        "first_point_ms_p50": percentile(first, 0.5), "first_point_ms_p90": percentile(first, 0.9),
        "ws_open_ms_p50": percentile(ws, 0.5),
        "dom_content_loaded_ms_p50": percentile(dcl, 0.5),
        "first_point_over_dom_content_loaded": percentile(first, 0.5) / max(
            percentile(dcl, 0.5), 1e-9),
        "first_point_ms_target": TARGET_FIRST_POINT_MS, "samples": samples,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--json-out", default=str(ROOT / "bench" / "results" / "dashboard.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="xsys-bench-dash-") as tmp:
        try:
            results = asyncio.run(run(args.runs, Path(tmp)))
        except ChromiumUnavailable as exc:
            print(f"skipped: {exc}")
            return 0
    rows = [(f"bytes: {name}", f"{size}", "") for name, size in
            sorted(results["bytes_per_asset"].items())]
    rows += [
        ("bytes: total (page + assets)", f"{results['total_bytes']}",
         f"target < {TARGET_BYTES} ({'ok' if results['total_bytes'] < TARGET_BYTES else 'OVER'})"),
        ("socket open, p50 ms", f"{results['ws_open_ms_p50']:.1f}", "from navigation start"),
        ("first chart point, p50 ms", f"{results['first_point_ms_p50']:.1f}",
         f"target < {TARGET_FIRST_POINT_MS:.0f} "
         f"({'ok' if results['first_point_ms_p50'] < TARGET_FIRST_POINT_MS else 'OVER'})"),
        ("first chart point, p90 ms", f"{results['first_point_ms_p90']:.1f}", ""),
        ("DOMContentLoaded, p50 ms", f"{results['dom_content_loaded_ms_p50']:.1f}",
         "reference, same run"),
        ("first point / DOMContentLoaded", f"{results['first_point_over_dom_content_loaded']:.2f}",
         "ratio"),
    ]
    report(rows, results, args.json_out,
           f"dashboard over {results['runs']} cold loads (Chromium, localhost)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
