"""Without a browser the browser test is skipped and says how to enable it; where CI requires
one (LOANBUS_REQUIRE_BROWSER=1) its absence fails. Run as a user would: pytest in a process
whose PATH has no chromium."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


PYTEST = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"]


def _browser_test(**env: str) -> subprocess.CompletedProcess[str]:
    no_browser = {k: v for k, v in os.environ.items() if k != "LOANBUS_REQUIRE_BROWSER"}
    no_browser.update(PATH=str(Path(sys.executable).parent), **env)
    return subprocess.run(
        [*PYTEST, "tests/test_camera.py", "-k", "chromium"],
        env=no_browser, cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_without_chromium_the_browser_test_is_skipped_with_how_to_enable_it() -> None:
    result = _browser_test()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 skipped" in result.stdout
    assert (
        "chromium is not installed: install Debian's chromium (sudo apt-get install chromium) "
        "to run this test" in result.stdout
    )


def test_where_ci_requires_a_browser_a_missing_one_fails_the_run() -> None:
    result = _browser_test(LOANBUS_REQUIRE_BROWSER="1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed" in result.stdout
    assert "chromium is not installed, and LOANBUS_REQUIRE_BROWSER=1 requires it" in result.stdout
