"""Every fenced code block of README.md and docs/*.md runs, or is marked as not run.

By info string:

- ``python``: executed in a subprocess against a real daemon (``XSYS_SOCKET`` set);
- ``console``: each ``$ xsys ...`` line is run against that daemon and must exit 0; its
  output is compared with the block's loosely, by shape: the header words of the
  expected tables (``PID``, ``USE%``) and the ``label:`` words that start its lines must
  appear (numbers, names and row counts may differ). ``$ promtool ...`` lines run when
  promtool is installed. Any other command makes the block fail: mark it not run;
- ``json``: parsed; a config (its top-level keys are config sections, or a TinyMonitor
  file) is loaded by the config loader, so a wrong key or value fails;
- ``yaml``: parsed; a Prometheus config (``scrape_configs`` or a list of scrape jobs) is
  checked with ``promtool check config`` when promtool is installed;
- ``toml``: parsed;
- ``ts``/``typescript``: compiled against the TypeScript package (``@xsys/client``, built
  from ``clients/typescript/src`` when stale) and run with node against the daemon, as the
  package's README test does (``clients/typescript/test/readme.test.ts``); skipped with
  the reason when node or the package's node_modules are missing;
- ``text``: not run (diagrams, usage lines, sample output), counted;
- any block preceded by ``<!-- not-run: reason -->`` is not run, counted, and needs
  the reason.

A block without an info string, or in a language none of the above, fails.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.launcher import REPO, DaemonProcess, daemon_env
from xsys.config import Config, from_dict, looks_like_tinymonitor
from xsys.monitor.config import convert_tinymonitor

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
TS_DIR = REPO / "clients" / "typescript"
NOT_RUN = re.compile(r"<!--\s*not-run:\s*(.*?)\s*-->")
FENCE = re.compile(r"^```([\w+-]*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
SHELL_LANGS = {"console", "sh", "shell", "bash"}
CONFIG_SECTIONS = set(Config.__dataclass_fields__)
#: Most blocks the docs may leave unrun with a not-run marker (text blocks aside).
MAX_NOT_RUN = 8


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its info string, its text and its not-run reason."""

    path: Path
    line: int
    lang: str
    code: str
    not_run: str | None

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}:{self.lang or 'none'}"


def blocks_of(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file, in order."""
    text = path.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = NOT_RUN.search(before)
        out.append(Block(path, line, m.group(1).lower(), m.group(2),
                         marker.group(1) if marker else None))
    return out


ALL = [b for p in DOCS for b in blocks_of(p)]


def by_lang(*langs: str) -> list[Any]:
    """The runnable blocks in those languages, as pytest params."""
    return [pytest.param(b, id=b.id) for b in ALL if b.lang in langs and b.not_run is None]


# --------------------------------------------------------------------------- inventory


def test_every_block_is_runnable_or_marked() -> None:
    known = {"python", "json", "yaml", "toml", "ts", "typescript", "text"} | SHELL_LANGS
    bad = [b.id for b in ALL if b.not_run is None and b.lang not in known]
    assert not bad, f"blocks without a runnable info string (use ```text or not-run): {bad}"
    unexplained = [b.id for b in ALL if b.not_run is not None and not b.not_run.strip()]
    assert not unexplained, f"not-run markers need a reason: {unexplained}"


_LIST_ITEM = re.compile(r"\s*([-*+]|\d+[.)])\s")


def indented_blocks(text: str) -> list[int]:
    """Line numbers of indented (4-space) code blocks outside fences and lists: the
    runner only sees fenced blocks, so code there would never run."""
    out: list[int] = []
    in_fence = False
    prev = ""
    in_list = False
    for n, line in enumerate(text.split("\n"), 1):
        if line.startswith("```"):
            in_fence = not in_fence
        elif not in_fence:
            if _LIST_ITEM.match(line):
                in_list = True
            elif not line.startswith(" ") and line.strip():
                in_list = False
            if line.startswith("    ") and not prev.strip() and not in_list:
                out.append(n)
        prev = line
    return out


def test_indented_blocks_are_found() -> None:
    assert indented_blocks("a\n\n    code\n\n- item\n\n    more of the item\n") == [3]
    assert indented_blocks("```text\n\n    in a fence\n```\n") == []


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_no_indented_code_blocks(path: Path) -> None:
    lines = indented_blocks(path.read_text(encoding="utf-8"))
    assert not lines, (f"{path.name}: indented code blocks at lines {lines} are never run; "
                       "fence them (```python, ```console, ```text or not-run)")


def test_not_run_blocks_are_counted() -> None:
    counts = Counter("not-run" if b.not_run is not None else b.lang for b in ALL)
    print("doc blocks:", dict(sorted(counts.items())))
    assert counts["not-run"] <= MAX_NOT_RUN, [b.id for b in ALL if b.not_run is not None]
    assert counts["python"] >= 3 and counts["console"] >= 3  # the runner finds blocks


def test_fence_parser_sees_markers_and_languages(tmp_path: Path) -> None:
    md = tmp_path / "x.md"
    md.write_text("a\n\n```python\nprint(1)\n```\n<!-- not-run: needs root -->\n```sh\nls\n```\n")
    got = blocks_of(md)
    assert [(b.lang, b.code, b.not_run) for b in got] == [
        ("python", "print(1)\n", None), ("sh", "ls\n", "needs root")]


# --------------------------------------------------------------------------- daemon


@pytest.fixture(scope="module")
def doc_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """One daemon for every block: default fs.roots (home, here a temp dir, and the
    system temp dir), a service check named ``redis`` (docs/checks.md), console alerts."""
    work = tmp_path_factory.mktemp("docd")
    home = work / "home"
    home.mkdir()
    sock_dir = Path("/tmp") / f"xsys-doc-{os.getpid()}"  # short: socket paths ~107 bytes
    sock_dir.mkdir(mode=0o700, exist_ok=True)
    sock = str(sock_dir / "xsys.sock")
    config = {"server": {"socket": sock},
              "monitor": {"refresh": 0.5},
              "checks": [{"name": "redis", "tcp": "127.0.0.1:1", "interval_s": 30}]}
    path = work / "config.json"
    path.write_text(json.dumps(config))
    env = daemon_env(home=home)
    env.pop("XDG_RUNTIME_DIR", None)
    proc = DaemonProcess(sock, ["--config", str(path)], log_path=work / "daemon.log",
                         env=env, source_root=REPO)
    proc.start()
    yield proc
    proc.stop()
    shutil.rmtree(sock_dir, ignore_errors=True)


def client_env(daemon: DaemonProcess, home: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XSYS_")}
    env["XSYS_SOCKET"] = daemon.socket
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["COLUMNS"] = "120"
    return env


# --------------------------------------------------------------------------- python


@pytest.mark.parametrize("block", by_lang("python"))
def test_python_block_runs(block: Block, doc_daemon: DaemonProcess, tmp_path: Path) -> None:
    script = tmp_path / "block.py"
    script.write_text(block.code)
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=client_env(doc_daemon),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"{block.id} failed:\n{r.stdout}\n{r.stderr}"


# --------------------------------------------------------------------------- console


def commands(code: str) -> list[tuple[str, list[str]]]:
    """``[(command, expected output lines)]`` of a console block (``$ `` prompts)."""
    out: list[tuple[str, list[str]]] = []
    for line in code.splitlines():
        if line.startswith("$ "):
            out.append((line[2:].strip(), []))
        elif out:
            out[-1][1].append(line)
    return out


_HEADER_WORD = re.compile(r"[A-Z][A-Z0-9%/_.-]*")
_LABEL = re.compile(r"^([a-z][a-z0-9 _/-]*?):(\s|$)")


def shape(expected: list[str]) -> set[str]:
    """The words an output of this shape must contain: every word of a table header
    line (a line of upper-case words only) and every ``label:`` a line starts with;
    else the first word."""
    words: set[str] = set()
    for line in expected:
        tokens = line.split()
        if len(tokens) >= 2 and all(_HEADER_WORD.fullmatch(t) for t in tokens):
            words.update(tokens)
        m = _LABEL.match(line)
        if m:
            words.add(m.group(1) + ":")
    if not words and expected and expected[0].split():
        words.add(expected[0].split()[0])
    return words


def test_shape_of_tables_and_labels() -> None:
    assert shape(["           TOTAL       USED  USE%", "memory  23.5 GiB  1.0 GiB  2.4%"]) \
        == {"TOTAL", "USED", "USE%"}
    assert shape(["hostname: vm", "last tick: 2026-11-30"]) == {"hostname:", "last tick:"}
    assert shape(["pong from /x in 0.3 ms"]) == {"pong"}


_SPACED_TIME = re.compile(r"\b\d{4}-\d{2}-\d{2} \d{2}:\d{2}")


def format_slips(expected: list[str]) -> list[str]:
    """Sample output that breaks the CLI's one format per kind of value: a cell under a
    ``%`` header without its ``%``, a time not in ISO-8601 (``T`` between date and time)."""
    slips: list[str] = []
    header: str | None = None
    for line in expected:
        tokens = line.split()
        if len(tokens) >= 2 and all(_HEADER_WORD.fullmatch(t) for t in tokens):
            header = line
            continue
        if not line.strip():
            header = None
        if _SPACED_TIME.search(line):
            slips.append(f"time not ISO-8601: {line.strip()}")
        if header is None:
            continue
        for m in re.finditer(r"\S+%", header):  # right-aligned: the cell ends where it does
            end = m.end()
            cell = line[:end].split()[-1] if line[:end].strip() else ""
            if cell and not cell.endswith("%") and line[end:end + 1] in ("", " "):
                slips.append(f"{m.group()} cell {cell!r} without %: {line.strip()}")
    return slips


def test_format_slips_are_found() -> None:
    assert format_slips(["MOUNT  USE%", "/     23.10", "/var  3.4%"]) == [
        "USE% cell '23.10' without %: /     23.10"]
    assert format_slips(["last tick: 2026-11-30 16:53:54"]) == [
        "time not ISO-8601: last tick: 2026-11-30 16:53:54"]
    assert format_slips(["CPU%  MEM%", "1.0%  2.0%", "", "x  y"]) == []


@pytest.mark.parametrize("block", [pytest.param(b, id=b.id) for b in ALL
                                   if b.lang == "console"])
def test_console_samples_use_the_clis_formats(block: Block) -> None:
    slips = [s for _, expected in commands(block.code) for s in format_slips(expected)]
    assert not slips, f"{block.id}: the sample is not what the CLI prints: {slips}"


def run_command(cmd: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    argv = shlex.split(cmd, comments=True)
    if argv[0] == "xsys":
        argv = [sys.executable, "-m", "xsys", *argv[1:]]
    elif argv[0] == "promtool":
        if shutil.which("promtool") is None:
            pytest.skip("promtool is not installed (make test-deps)")
    else:
        pytest.fail(f"`{cmd}`: only xsys and promtool commands run; mark the block not-run")
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("block", by_lang(*SHELL_LANGS))
def test_console_block_runs(block: Block, doc_daemon: DaemonProcess) -> None:
    assert block.lang == "console", \
        f"{block.id}: runnable shell blocks are ```console with $ prompts"
    cmds = commands(block.code)
    assert cmds, f"{block.id}: no `$ ` command in the block"
    for cmd, expected in cmds:
        r = run_command(cmd, client_env(doc_daemon), REPO)
        assert r.returncode == 0, f"{block.id}: `{cmd}` exited {r.returncode}:\n{r.stderr}"
        missing = sorted(w for w in shape(expected) if w not in r.stdout)
        assert not missing, f"{block.id}: `{cmd}` output lacks {missing}:\n{r.stdout}"
        if any(line.strip() for line in expected):
            assert r.stdout.strip(), f"{block.id}: `{cmd}` printed nothing"


# --------------------------------------------------------------------------- data


def is_config(data: Any) -> bool:
    return isinstance(data, dict) and bool(data) and (
        set(data) <= CONFIG_SECTIONS or looks_like_tinymonitor(data))


@pytest.mark.parametrize("block", by_lang("json"))
def test_json_block_parses_and_configs_load(block: Block) -> None:
    data = json.loads(block.code)
    if is_config(data):
        if looks_like_tinymonitor(data):
            data = convert_tinymonitor(data, warn=lambda msg: pytest.fail(msg))
        from_dict(Config, data)  # raises ConfigError naming the bad key


@pytest.mark.parametrize("block", by_lang("toml"))
def test_toml_block_parses(block: Block) -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    tomllib.loads(block.code)


def prometheus_config(data: Any) -> dict[str, Any] | None:
    """The block as a whole Prometheus config, when it is one or a list of scrape jobs."""
    if isinstance(data, dict) and "scrape_configs" in data:
        return data
    if isinstance(data, list) and data and all(isinstance(j, dict) and "job_name" in j
                                               for j in data):
        return {"scrape_configs": data}
    return None


@pytest.mark.parametrize("block", by_lang("yaml"))
def test_yaml_block_parses(block: Block, tmp_path: Path) -> None:
    assert "\\n" not in block.code.replace("'\\n'", "").replace(":\\n'", ""), \
        f"{block.id}: a literal \\n cannot be pasted"
    data = yaml.safe_load(block.code)
    prom = prometheus_config(data)
    if prom is None:
        return
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed (make test-deps): parsed only")
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(prom))
    # --syntax-only: the files a snippet names (CA, password) do not exist here
    r = subprocess.run(["promtool", "check", "config", "--syntax-only", str(path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"{block.id}: promtool check config:\n{r.stdout}\n{r.stderr}"


# --------------------------------------------------------------------------- typescript


def _ts_unavailable() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (TS_DIR / "node_modules" / ".bin" / "tsc").exists():
        return "clients/typescript/node_modules is missing (make ts-deps)"
    return None


def _built_package_is_current() -> bool:
    index = TS_DIR / "dist" / "esm" / "index.js"
    if not index.exists():
        return False
    newest_src = max(p.stat().st_mtime for p in (TS_DIR / "src").rglob("*.ts"))
    return index.stat().st_mtime >= newest_src


@pytest.fixture(scope="module")
def ts_examples() -> dict[str, Path]:
    """Every runnable TypeScript block compiled to JavaScript inside the package (so that
    ``@xsys/client`` resolves to the package itself): ``{block id: .js file}``."""
    reason = _ts_unavailable()
    if reason:
        pytest.skip(reason)
    blocks = [b for b in ALL if b.lang in ("ts", "typescript") and b.not_run is None]
    tsc = str(TS_DIR / "node_modules" / ".bin" / "tsc")
    if not _built_package_is_current():
        r = subprocess.run([tsc, "-p", "tsconfig.json"], cwd=TS_DIR, capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, f"building the TypeScript package failed:\n{r.stdout}"
    src = TS_DIR / "dist" / "docs-src"
    out = TS_DIR / "dist" / "docs"
    shutil.rmtree(src, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    src.mkdir(parents=True)
    files: dict[str, Path] = {}
    for i, b in enumerate(blocks):
        name = f"block{i:02d}"
        (src / f"{name}.ts").write_text(f"// {b.id}\n{b.code}")
        files[b.id] = out / f"{name}.js"
    (src / "tsconfig.json").write_text(json.dumps({
        "extends": "../../tsconfig.base.json",
        "compilerOptions": {"module": "NodeNext", "moduleResolution": "NodeNext",
                            "rootDir": ".", "outDir": "../docs", "declaration": False,
                            "sourceMap": False, "noUnusedLocals": False},
        "include": ["*.ts"]}))
    r = subprocess.run([tsc, "-p", str(src / "tsconfig.json")], cwd=TS_DIR,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"TypeScript blocks do not type-check:\n{r.stdout}"
    return files


@pytest.mark.parametrize("block", by_lang("ts", "typescript"))
def test_typescript_block_type_checks_and_runs(block: Block, ts_examples: dict[str, Path],
                                               doc_daemon: DaemonProcess) -> None:
    js = ts_examples[block.id]
    r = subprocess.run(["node", str(js)], cwd=TS_DIR, env=client_env(doc_daemon),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"{block.id} failed:\n{r.stdout}\n{r.stderr}"
    assert r.stdout.strip(), f"{block.id} printed nothing"
