"""Every shipped example runs as shipped (subprocess, timeout) and says what it should."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_shows_the_quickstart_example_exactly_as_shipped() -> None:
    readme = (ROOT / "README.md").read_text()
    shipped = (ROOT / "examples" / "quickstart.py").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert blocks and blocks[0] == shipped, "paste examples/quickstart.py into the README's first block"
    assert "[examples/quickstart.py](examples/quickstart.py): the program above" in readme


def test_the_quickstart_example_moves_a_frame_zero_copy(domain_id: int) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py"), str(domain_id)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "seq=10000 red=255 consistent=True" in result.stdout


HELLO = ROOT / "examples" / "hello_zero_copy" / "hello.py"


def test_the_hello_walkthrough_shows_a_reused_slot_turning_inconsistent(domain_id: int) -> None:
    result = subprocess.run(
        [sys.executable, str(HELLO), "walkthrough", "--domain", str(domain_id)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "3. the subscriber took id=10000 and id=20000" in out
    assert "4. a third get_loan() returns slot 0 again" in out
    assert "now reads id=999" in out
    assert "is_data_consistent(first sample) = False" in out
    assert "is_data_consistent(second sample) = True" in out


def test_the_hello_publisher_and_subscriber_exchange_intact_samples(domain_id: int) -> None:
    args = ["--domain", str(domain_id), "--count", "5"]
    sub = subprocess.Popen(
        [sys.executable, str(HELLO), "subscriber", *args], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        pub = subprocess.run(
            [sys.executable, str(HELLO), "publisher", *args],
            capture_output=True,
            text=True,
            timeout=90,
            cwd=ROOT,
        )
        out, _ = sub.communicate(timeout=90)
    finally:
        if sub.poll() is None:
            sub.kill()
    assert pub.returncode == 0, pub.stderr
    assert sub.returncode == 0
    lines = [line for line in out.splitlines() if line.startswith("received")]
    assert lines == [f"received id={i} intact=True consistent=True" for i in range(5)]
