"""The docs say what the code does: the lifecycle diagram is the one the slot table generates."""

from __future__ import annotations

import re
from pathlib import Path

from loanbus._slotstate import mermaid_diagram

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_the_lifecycle_diagram_in_the_concepts_page_is_generated_from_the_slot_table() -> None:
    text = (DOCS / "concepts.md").read_text()
    blocks = re.findall(r"```mermaid\n(.*?)\n```", text, flags=re.S)
    lifecycle = [b for b in blocks if b.startswith("stateDiagram-v2")]
    assert lifecycle == [mermaid_diagram()], (
        "docs/concepts.md's slot diagram differs from loanbus._slotstate.mermaid_diagram(); "
        "paste the function's output into the page"
    )
