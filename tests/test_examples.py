"""Every shipped example runs as shipped (subprocess, timeout) and says what it should."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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
