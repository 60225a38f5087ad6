"""The examples ``idlc --example`` writes run as they are and exchange samples."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .ctools import REPO

pytestmark = pytest.mark.portable  # .ci/run runs it on every supported Python

SHIPPED = ["HelloWorld.idl", "Image.idl", "PointCloud.idl"]


@pytest.mark.parametrize("name", SHIPPED)
def test_generated_publisher_and_subscriber_exchange_samples(
    name: str, tmp_path: Path, domain_id: int
) -> None:
    idlc = [sys.executable, "-m", "loanbus.cli.idlc", str(REPO / "idl" / name)]
    compiled = subprocess.run(
        [*idlc, "-o", str(tmp_path), "--example"], capture_output=True, text=True, timeout=60
    )
    assert compiled.returncode == 0, compiled.stderr
    common = ["--domain", str(domain_id), "--topic", f"example_{tmp_path.name}"]
    subscriber = subprocess.Popen(
        [sys.executable, "subscriber.py", *common, "--count", "3", "--timeout", "40"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(0.5)
        publisher = subprocess.run(
            [sys.executable, "publisher.py", *common, "--count", "20", "--period", "0.05"],
            cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        out, err = subscriber.communicate(timeout=60)
    finally:
        if subscriber.poll() is None:
            subscriber.kill()
            subscriber.wait()
    assert publisher.returncode == 0, publisher.stderr
    assert publisher.stdout.count("writing ") == 20
    assert subscriber.returncode == 0, out + err
    received = [line for line in out.splitlines() if line.startswith("received #")]
    assert len(received) >= 3, out
    assert all(line.endswith("consistent=True") for line in received), out
    type_name = name.removesuffix(".idl")
    assert all(f"{type_name}(" in line for line in received), out


def _options(help_text: str) -> set[str]:
    return set(re.findall(r"^\s+(?:-\w, )?(--[a-z]+)", help_text, flags=re.M))


def test_each_generated_example_describes_its_own_options_and_no_other(tmp_path: Path) -> None:
    idlc = [sys.executable, "-m", "loanbus.cli.idlc", str(REPO / "idl" / "HelloWorld.idl")]
    compiled = subprocess.run([*idlc, "-o", str(tmp_path), "--example"], capture_output=True, text=True)
    assert compiled.returncode == 0, compiled.stderr
    common = {"--help", "--type", "--topic", "--domain", "--count"}
    own = {"publisher": {"--period", "--wait"}, "subscriber": {"--timeout"}}
    for name, options in own.items():
        shown = subprocess.run(
            [sys.executable, f"{name}.py", "--help"], capture_output=True, text=True, cwd=tmp_path
        )
        assert shown.returncode == 0, shown.stderr
        assert _options(shown.stdout) == common | options, shown.stdout
        usage = (tmp_path / f"{name}.py").read_text().split('"""')[1]
        assert set(re.findall(r"--[a-z]+", usage)) == (common - {"--help"}) | options, usage
    publisher = (tmp_path / "publisher.py").read_text()
    subscriber = (tmp_path / "subscriber.py").read_text()
    assert "samples to write" in publisher and "samples to write" not in subscriber
    assert "seconds to keep reading" in subscriber and "seconds to keep reading" not in publisher
