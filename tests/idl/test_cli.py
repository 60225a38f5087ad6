"""``loanbus idlc``: what it writes, and how it refuses (exit status 2, no traceback)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import loanbus.idl
from loanbus._layout import Layout
from loanbus.cli.idlc import idlc
from loanbus.cli.main import cli
from loanbus.idl import IdlError
from loanbus.idl.checker import check
from loanbus.idl.report import pool_bytes, pool_warnings

from .ctools import CORPUS, INCLUDE_DIRS, REPO

pytestmark = pytest.mark.portable  # .ci/run runs it on every supported Python


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


def test_idlc_says_which_structs_are_loanable_and_which_are_not(tmp_path: Path) -> None:
    idl = REPO / "idl" / "PointCloud.idl"
    result = _run(str(idl), "-o", str(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"{idl}: loanable (@transfer_mode(SHMEM_REF)): sensors::PointCloud (1.9 MiB a sample)" in lines
    assert (
        f"{idl}: not loanable (no @transfer_mode(SHMEM_REF); fine as member types): "
        "sensors::Time, sensors::Header, sensors::Point"
    ) in lines

    plain = tmp_path / "plain.idl"
    plain.write_text("struct Note { string text; };\nstruct P { long x; };\n")
    result = _run(str(plain), "-o", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:3] == [
        f"{plain}: no loanable struct: put @transfer_mode(SHMEM_REF) before a struct to loan its samples",
        f"{plain}: not loanable (no @transfer_mode(SHMEM_REF); fine as member types): P",
        f"{plain}: by value only (an unbounded string or sequence): Note",
    ]


BIG = "@transfer_mode(SHMEM_REF)\nstruct Big {\n    long id;\n    octet blob[8192][1048576];\n};\n"


def test_a_struct_too_big_for_one_numpy_dtype_is_an_error_at_its_largest_member(tmp_path: Path) -> None:
    idl = tmp_path / "big.idl"
    idl.write_text(BIG)
    result = _run(str(idl), "-o", str(tmp_path / "out"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr == (
        f"{idl}:4:5: Big is 8,589,934,596 bytes; a generated class holds at most 2,147,483,647 "
        "(numpy's limit for one dtype): make it smaller, or describe a larger sample with "
        "loanbus.ShmemType(name, dtype, shape=...)\n"
        "    octet blob[8192][1048576];\n"
        "    ^\n"
    )
    assert not (tmp_path / "out").exists()
    with pytest.raises(IdlError, match="numpy's limit"):
        loanbus.idl.load(idl)


def test_idlc_warns_with_the_free_space_when_the_default_pool_cannot_fit_in_dev_shm(tmp_path: Path) -> None:
    """In a private mount namespace /dev/shm is a tmpfs of 8 MiB, as in a small container."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1)")
    image, hello = REPO / "idl" / "Image.idl", REPO / "idl" / "HelloWorld.idl"
    script = (
        'mount -t tmpfs -o size=8m,mode=1777 tmpfs /dev/shm && "$0" -m loanbus.cli.idlc "$1" -o "$3" '
        '&& echo --- >&2 && "$0" -m loanbus.cli.idlc "$2" -o "$3"'
    )
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c", script, sys.executable, str(image), str(hello), str(tmp_path)],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    if result.returncode != 0 and ("mount" in result.stderr or "unshare" in result.stderr):
        pytest.skip(f"cannot make a private /dev/shm here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    image_err, hello_err = result.stderr.split("---\n")
    assert image_err == (
        f"{image}:23:9: warning: a pool of max_samples + 1 = 2 samples of camera::Image needs 11.9 MiB, "
        "more than the 8.0 MiB free in /dev/shm on this machine: make the sample smaller, or give "
        "/dev/shm more room (a container: --shm-size)\n"
        "        octet pixels[WIDTH * HEIGHT * CHANNELS];\n"
        "        ^\n"
    )
    assert hello_err == ""  # a pool of two 1 MiB samples fits
    assert (tmp_path / "image" / "__init__.py").is_file()  # a warning, not an error


def test_the_pool_warning_comes_exactly_when_the_pool_needs_more_than_is_free() -> None:
    spec = check(str(REPO / "idl" / "Image.idl"))
    needed = pool_bytes(spec.loanable[0].size)
    assert needed == Layout.compute(2, 16, 6_220_824).segment_size
    assert pool_warnings(spec, needed) == []
    (warning,) = pool_warnings(spec, needed - 1)
    assert warning.pos.line == 23 and "camera::Image needs 11.9 MiB" in warning.message
