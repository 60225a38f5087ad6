"""Tests that need what ``pip install '.[test]'`` does not bring (a browser, torch, root with
network namespaces).

Where it is missing such a test is skipped with a message that says how to enable it, so a
user without root can run the whole suite. CI sets ``LOANBUS_REQUIRE_<WHAT>=1`` (see
``.ci/run``), which turns that skip into a failure: there, a missing tool is a broken set-up.
"""

from __future__ import annotations

import os
import shutil

import pytest

BROWSER = "LOANBUS_REQUIRE_BROWSER"
TORCH = "LOANBUS_REQUIRE_TORCH"
NETNS = "LOANBUS_REQUIRE_NETNS"


def require(what: str, present: bool, how: str, variable: str, problem: str = "is not installed") -> None:
    """Skip the calling test (or fail it where ``variable`` is set) unless ``present``."""
    if present:
        return
    if os.environ.get(variable, "").strip() not in ("", "0"):
        pytest.fail(f"{what} {problem}, and {variable}=1 requires it: {how}", pytrace=False)
    pytest.skip(f"{what} {problem}: {how} to run this test")


def chromium() -> str:
    """The path of Debian's chromium, or skip (fail where CI requires a browser)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    how = "install Debian's chromium (sudo apt-get install chromium)"
    require("chromium", found is not None, how, BROWSER)
    assert found is not None
    return found


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def torch() -> None:
    """Skip (fail where CI requires torch) unless torch imports."""
    require("torch", torch_available(), "pip install torch (its CPU build is enough)", TORCH)
