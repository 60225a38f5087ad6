"""The docs say what the code does: the lifecycle diagram is the one the slot table generates,
the configuration XML the one loanbus builds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from loanbus._slotstate import mermaid_diagram
from loanbus._transport.config import build_config

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_the_lifecycle_diagram_in_the_concepts_page_is_generated_from_the_slot_table() -> None:
    text = (DOCS / "concepts.md").read_text()
    blocks = re.findall(r"```mermaid\n(.*?)\n```", text, flags=re.S)
    lifecycle = [b for b in blocks if b.startswith("stateDiagram-v2")]
    assert lifecycle == [mermaid_diagram()], (
        "docs/concepts.md's slot diagram differs from loanbus._slotstate.mermaid_diagram(); "
        "paste the function's output into the page"
    )


def test_the_configuration_page_shows_both_profiles_as_build_config_makes_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in ("LOANBUS_INTERFACE", "LOANBUS_PEERS", "LOANBUS_MULTICAST", "LOANBUS_MAX_PARTICIPANTS"):
        monkeypatch.delenv(var, raising=False)
    text = (DOCS / "configuration.md").read_text()
    shown = re.findall(r"```xml\n(.*?)\n```", text, flags=re.S)
    made = [build_config(lease_duration=10.0, profile=p) for p in ("default", "loopback")]
    assert shown == [m[m.index("<CycloneDDS") :].strip() for m in made], (
        "docs/configuration.md's XML differs from loanbus._transport.config.build_config(); "
        "paste its output for each profile into the page"
    )
