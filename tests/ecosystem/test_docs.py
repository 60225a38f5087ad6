"""The complete example in docs/ecosystem.md runs as written and prints what the page shows."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "ecosystem.md"


def test_the_asyncio_example_of_the_docs_prints_what_the_docs_show(domain_id: int, tmp_path: Path) -> None:
    text = DOC.read_text()
    section = text[text.index("## asyncio") :]
    code, shown = re.findall(r"```(?:python)?\n(.*?)```", section, flags=re.S)[:2]
    script = tmp_path / "example.py"
    script.write_text(code.replace("domain_id=201", f"domain_id={domain_id}"))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == shown
