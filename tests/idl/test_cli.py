"""``loanbus idlc``: what it writes, and how it refuses (exit status 2, no traceback)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from loanbus.cli.idlc import idlc
from loanbus.cli.main import cli

from .ctools import CORPUS, INCLUDE_DIRS, REPO


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loanbus.cli.idlc", *args],
        capture_output=True, text=True, cwd=cwd, timeout=60, check=False,
    )  # fmt: skip


def test_idlc_writes_a_python_package_named_after_the_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(idlc, [str(REPO / "idl" / "PointCloud.idl"), "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    init = tmp_path / "pointcloud" / "__init__.py"
    assert f"wrote {init}" in result.output
    assert (tmp_path / "pointcloud" / "py.typed").is_file()
    assert "class PointCloud(_rt.StructView):" in init.read_text()


def test_idlc_is_a_subcommand_of_loanbus(tmp_path: Path) -> None:
    idl = REPO / "idl" / "HelloWorld.idl"
    result = CliRunner().invoke(cli, ["idlc", str(idl), "-o", str(tmp_path), "--lang", "c"])
    assert result.exit_code == 0, result.output
    header = (tmp_path / "helloworld.h").read_text()
    assert "typedef struct HelloWorld {" in header and "char raw_image_data[1048576];" in header


def test_example_flag_writes_a_publisher_and_a_subscriber(tmp_path: Path) -> None:
    idl = REPO / "idl" / "Image.idl"
    result = CliRunner().invoke(idlc, [str(idl), "-o", str(tmp_path), "--example"])
    assert result.exit_code == 0, result.output
    assert {p.name for p in tmp_path.iterdir()} == {"image", "publisher.py", "subscriber.py"}
    assert "from image import Image" in (tmp_path / "publisher.py").read_text()


def test_include_directories_are_searched_in_order(tmp_path: Path) -> None:
    idl = str(CORPUS / "good" / "includes.idl")
    found = CliRunner().invoke(idlc, [idl, "-o", str(tmp_path), "-I", str(INCLUDE_DIRS[0])])
    assert found.exit_code == 0, found.output
    missing = CliRunner().invoke(idlc, [idl, "-o", str(tmp_path)])
    assert missing.exit_code == 2
    assert "includes.idl:4:1: cannot find 'units.idl'" in missing.output


def test_an_error_is_file_line_column_message_then_the_line_and_a_caret() -> None:
    bad = CORPUS / "bad" / "unbounded_string.idl"
    result = _run(bad.name, "-o", "unused", cwd=bad.parent)
    assert result.returncode == 2
    assert result.stderr == (
        "unbounded_string.idl:5:5: unbounded string in SHMEM_REF type Msg: a loanable sample "
        "has a fixed size; give it a bound: string<N>\n"
        "    string text;\n"
        "    ^\n"
    )
    assert result.stdout == ""
    assert not (bad.parent / "unused").exists()


def test_syntax_errors_exit_with_status_2_and_no_traceback() -> None:
    for name in ("missing_semicolon.idl", "include_broken.idl"):
        result = _run(name, "-o", "unused", cwd=CORPUS / "bad")
        assert result.returncode == 2, name
        assert "Traceback" not in result.stderr and result.stderr.count("^") == 1, result.stderr


def test_a_missing_file_is_reported_like_any_other_error(tmp_path: Path) -> None:
    result = _run(str(tmp_path / "absent.idl"), "-o", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.startswith(f"{tmp_path / 'absent.idl'}:1:1: cannot read")
    assert "Traceback" not in result.stderr


def test_example_with_c_output_is_a_usage_error(tmp_path: Path) -> None:
    idl = str(REPO / "idl" / "HelloWorld.idl")
    result = CliRunner().invoke(idlc, [idl, "-o", str(tmp_path), "--lang", "c", "--example"])
    assert result.exit_code == 2
    assert "--example writes Python examples" in result.output
