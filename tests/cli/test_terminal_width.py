"""``loanbus ls`` and ``loanbus top`` in an 80x24 terminal and a 160-column one, with a real
pub/sub pair: nothing is cut or folded into fragments, and the wider terminal is used."""

from __future__ import annotations

import json
from typing import Any

from rich.cells import cell_len

from tests.cli import HELLO, poll_json, run, start, stop

TOPIC = "narrow"


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


def _width(text: str) -> int:
    return max(cell_len(line) for line in _lines(text))


def _readable(text: str, columns: int) -> None:
    assert _width(text) <= columns, text
    assert "…" not in text, text  # no header or cell cut short


def test_ls_and_top_are_readable_at_80_columns_and_use_160(domain_id: int) -> None:
    d = str(domain_id)
    sub = start("sub", TOPIC, "--idl", HELLO, "--domain", d)
    pub = start("pub", TOPIC, "--idl", HELLO, "--rate", "50", "--readers", "1", "--domain", d)
    try:

        def flowing(frame: list[dict[str, Any]]) -> bool:
            rows = {r["kind"]: r for r in frame if r["topic"] == TOPIC}
            return set(rows) == {"writer", "reader"} and all(r["samples_per_s"] > 0 for r in rows.values())

        poll_json(["top", "--once", "--json", "--domain", d], flowing, "statistics of the pair")
        listing = json.loads(run("ls", "--domain", d, "--json").stdout)
        (segment,) = [p["name"] for p in listing["pools"]]
        outputs = {
            (args, columns): run(*args, "--domain", d, env={"COLUMNS": str(columns)})
            for args in (("ls",), ("top", "--once"))
            for columns in (80, 160)
        }
        host_pools = {c: run("ls", env={"COLUMNS": str(c)}) for c in (80, 160)}
    finally:
        stop(pub)
        stop(sub)
    for result in [*outputs.values(), *host_pools.values()]:
        assert result.returncode == 0, result.stderr

    ls80, ls160 = outputs[("ls",), 80].stdout, outputs[("ls",), 160].stdout
    _readable(ls80, 80)
    assert segment in _lines(ls80)  # the whole name on a line of its own, not in 5-letter pieces
    assert f"{TOPIC}: writer, pid {pub.pid}" in ls80 and f"{TOPIC}: reader, pid {sub.pid}" in ls80
    assert "path: local" in ls80 and "owner pid: " in ls80 and "state: READY" in ls80
    assert len(_lines(ls80)) <= 24
    _readable(ls160, 160)
    assert _width(ls160) > 80  # the room is used
    assert any(segment in line and "READY" in line for line in _lines(ls160)) or segment in _lines(ls160)
    writer_row = next(line for line in _lines(ls160) if "writer" in line and str(pub.pid) in line)
    assert "HelloWorld" in writer_row and "reliable" in writer_row  # one line per endpoint

    for columns, result in host_pools.items():
        _readable(result.stdout, columns)
        assert any(segment in line for line in _lines(result.stdout))

    top80, top160 = outputs[("top", "--once"), 80].stdout, outputs[("top", "--once"), 160].stdout
    _readable(top80, 80)
    assert len(_lines(top80)) <= 24
    for label in ("samples/s: ", "MB/s not copied: ", "latency p50 / p99 µs: ", "inconsistent: "):
        assert label in top80, top80
    assert "pool slots: F" in top80 and "get_loan blocked / timed out: " in top80
    assert f"{TOPIC}: writer, pid {pub.pid}" in top80 and f"{TOPIC}: reader, pid {sub.pid}" in top80
    _readable(top160, 160)
    header = [line for line in _lines(top160) if "samples/s" in line]
    assert header and "inconsistent" in header[0] and "age" in header[0]  # one table, full headers
    rows = [line for line in _lines(top160) if TOPIC in line]
    assert any("writer" in r and str(pub.pid) in r and " held" in r for r in rows), top160
    assert any("reader" in r and str(sub.pid) in r and " of " in r for r in rows), top160
