"""The suite on a host whose only network interface is ``lo``: a pytest session of its own,
started inside a namespace with nothing but ``lo`` and no DDS configuration in its
environment (tests/conftest.py selects the loopback profile, as on any machine). It runs the
tests that exchange samples between processes through DDS: by value, with plain Cyclone DDS
peers and tools, from the command line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .netns import Lab
from .netns import lab as lab
from .procs import ROOT

MODULES = [
    "tests/test_transport.py",
    "tests/remote/test_same_host.py",
    "tests/remote/test_cyclonedds_tools.py",
    "tests/cli/test_pubsub.py",
    "tests/cli/test_ls.py",
]


@pytest.mark.timeout(900)
def test_the_dds_tests_pass_on_a_host_whose_only_interface_is_lo(lab: Lab) -> None:
    ns = lab.namespace()
    interfaces = ns.run("ip", "-o", "link", "show").stdout
    assert [line.split(":")[1].strip() for line in interfaces.splitlines()] == ["lo"]
    result = subprocess.run(
        [*ns.cmd(), sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *MODULES],
        cwd=ROOT, capture_output=True, text=True, timeout=850,
    )  # fmt: skip
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-5000:]
    assert " passed" in out and "failed" not in out, out[-3000:]
