"""Generate the README's method table from the router's registry (the single source of
truth): ``python -m xsys.docs README.md`` rewrites the block between
``<!-- methods:start -->`` and ``<!-- methods:end -->``; ``--check`` exits 1 on drift."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from xsys.config import Config
from xsys.server.router import MethodSpec, ParamSpec, Router

START, END = "<!-- methods:start -->", "<!-- methods:end -->"


def _param(p: ParamSpec) -> str:
    text = f"`{p.name}`: {p.type.replace('|', chr(92) + '|')}"
    if p.choices is not None:
        text = f"`{p.name}`: " + "\\|".join(repr(c).replace("'", '"') for c in p.choices)
    if not p.required:
        default = repr(p.default).replace("'", '"') if p.default is not None else "null"
        text += f" = {default}"
    return text


def _row(spec: MethodSpec) -> str:
    params = "<br>".join(_param(p) for p in spec.params) or "—"
    summary = spec.summary.replace("|", "\\|")
    extra = []
    if spec.streams:
        extra.append(f"streams `{spec.streams}`")
    if spec.progress:
        extra.append("progress")
    tail = f" ({', '.join(extra)})" if extra else ""
    return f"| `{spec.name}` | {params} | {summary}{tail} |"


def build_router() -> Router:
    """A router with every method registered on a default config (nothing started): the
    registry the generated docs and ``xsys.client._methods`` are made from."""
    from xsys.daemon import compose

    app, router = compose(Config())
    app.executor.shutdown(wait=False)
    return router


def method_table(router: Router | None = None) -> str:
    """The Markdown table of every registered method."""
    if router is None:
        router = build_router()
    lines = ["| method | params | summary |", "|---|---|---|"]
    lines += [_row(spec) for spec in router.specs()]
    return "\n".join(lines)


def render(readme: str) -> str:
    """``readme`` with its methods block regenerated."""
    block = f"{START}\n{method_table()}\n{END}"
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(readme):
        raise ValueError(f"no {START} ... {END} block found")
    return pattern.sub(lambda _m: block, readme)


def main(argv: list[str]) -> int:
    """CLI entry: ``[--check] README.md``."""
    check = "--check" in argv
    paths = [a for a in argv if not a.startswith("--")] or ["README.md"]
    path = Path(paths[0])
    old = path.read_text(encoding="utf-8")
    new = render(old)
    if check:
        if new != old:
            print(f"{path}: method table is out of date; run `make methods-doc`")
            return 1
        return 0
    path.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
