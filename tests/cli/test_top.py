"""``loanbus top``: statistics of a pub/sub pair running in other processes."""

from __future__ import annotations

from typing import Any

from tests.cli import HELLO, poll_json, run, start, stop


def _rows(frame: list[dict[str, Any]], topic: str) -> dict[str, dict[str, Any]]:
    return {r["kind"]: r for r in frame if r["topic"] == topic}


def test_top_once_shows_rates_latency_and_pool_of_a_running_pub_sub_pair(domain_id: int) -> None:
    d = str(domain_id)
    sub = start("sub", "hello", "--idl", HELLO, "--domain", d)
    pub = start("pub", "hello", "--idl", HELLO, "--rate", "50", "--readers", "1", "--domain", d)
    try:

        def flowing(frame: list[dict[str, Any]]) -> bool:
            rows = _rows(frame, "hello")
            return (
                set(rows) == {"writer", "reader"}
                and rows["writer"]["samples_per_s"] > 0
                and rows["reader"]["samples_per_s"] > 0
                and rows["reader"]["stats"]["latency_p50_us"] is not None
            )

        frame = poll_json(["top", "--once", "--json", "--domain", d], flowing, "a non-zero rate in top")
        rows = _rows(frame, "hello")
        writer, reader = rows["writer"], rows["reader"]
        assert (writer["pid"], reader["pid"]) == (pub.pid, sub.pid)
        assert writer["type_name"] == reader["type_name"] == "HelloWorld"
        assert (
            writer["bytes_per_s"] == writer["samples_per_s"] * writer["sample_size"]
            or writer["bytes_per_s"] > 0
        )
        assert writer["stats"]["slots"] == 5 and writer["stats"]["matched_readers"] == 1
        assert writer["stats"]["writes"] >= 1 and reader["stats"]["taken"] >= 1
        assert reader["stats"]["inconsistent"] == 0 and writer["stats"]["loan_timeouts"] == 0
        assert 0 <= reader["stats"]["latency_p50_us"] <= reader["stats"]["latency_p99_us"]

        table = run("top", "--iterations", "2", "--interval", "0.2", "--domain", d)
        assert table.returncode == 0, table.stderr
        assert table.stdout.count("loanbus top - domain") == 2
        lines = [line for line in table.stdout.splitlines() if "hello" in line]
        assert any("writer" in line and str(pub.pid) in line for line in lines)
        assert any("reader" in line and str(sub.pid) in line for line in lines)
    finally:
        pub_out, pub_err = stop(pub)
        sub_out, sub_err = stop(sub)
    assert "Traceback" not in pub_err + sub_err, pub_err + sub_err
    assert "samples of HelloWorld on 'hello'" in pub_out and "samples of HelloWorld on 'hello'" in sub_out


def test_top_once_on_an_empty_domain_says_nothing_publishes(domain_id: int) -> None:
    result = run("top", "--once", "--wait", "0.5", "--domain", str(domain_id))
    assert result.returncode == 0, result.stderr
    assert "no writer or reader publishes statistics" in result.stdout
