"""User mistakes on the command line: one line on stderr, a non-zero status, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli import HELLO, run

CASES = [
    (["pub", "t", "--idl", "missing.idl"], 2, "--idl missing.idl: no such file"),
    (["sub", "t", "--idl", HELLO, "--type", "Nope"], 2, "no loanable type of that name"),
    (
        ["pub", "t", "--idl", HELLO, "--set", "nope=1"],
        2,
        "no field 'nope' (the sample has fields: id, raw_image_data)",
    ),
    (["pub", "t", "--idl", HELLO, "--set", "id=abc"], 2, "'abc' is not a number for a field of int32"),
    (["pub", "t", "--idl", HELLO, "--set", "id=3000000000"], 2, "does not fit int32"),
    (["pub", "t", "--idl", HELLO, "--set", "id"], 2, "write FIELD=VALUE"),
    (["pub", "t", "--idl", HELLO, "--counter", "raw_image_data"], 2, "not an integer"),
    (["pub", "t", "--idl", HELLO, "--domain", "300"], 2, "--domain must be within 0..232, not 300"),
    (["sub", "t", "--idl", HELLO, "--domain", "-1"], 2, "--domain must be within 0..232, not -1"),
    (["top", "--once", "--domain", "233"], 2, "--domain must be within 0..232, not 233"),
    (["ls", "--domain", "999"], 2, "--domain must be within 0..232, not 999"),
    (["top", "--interval", "0"], 2, "--interval must be positive"),
    (["pub", "bad name", "--idl", HELLO], 2, "topic name 'bad name' must start with a letter"),
    (["pub", "t", "--idl", HELLO, "--rate", "-5"], 2, "--rate must not be negative, not -5"),
    (["sub", "t", "--idl", HELLO, "--interval", "-1"], 2, "--interval must not be negative, not -1"),
    (["demo", "--domain", "999"], 2, "--domain must be within 0..232, not 999"),
    (["demo", "--domain", "-1"], 2, "--domain must be within 0..232, not -1"),
    (["demo", "--rate", "-5"], 2, "--rate must not be negative, not -5"),
    (["demo", "--seconds", "0"], 2, "--seconds must be positive, not 0"),
]


@pytest.mark.parametrize(("args", "status", "says"), CASES, ids=[" ".join(c[0][:4]) for c in CASES])
def test_a_user_mistake_is_one_line_and_a_non_zero_exit(args: list[str], status: int, says: str) -> None:
    result = run(*args)
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"loanbus {args[0]}: error: ") and says in line, line


def test_an_idl_syntax_error_names_file_line_and_column_in_one_line(tmp_path: Path) -> None:
    idl = tmp_path / "broken.idl"
    idl.write_text("@transfer_mode(SHMEM_REF)\nstruct S {\n    long x\n};\n")
    result = run("sub", "t", "--idl", str(idl))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"loanbus sub: error: {idl}:4:1: ") or line.startswith(
        f"loanbus sub: error: {idl}:3:"
    ), line


def test_an_idl_file_without_a_loanable_type_is_refused(tmp_path: Path) -> None:
    idl = tmp_path / "plain.idl"
    idl.write_text("struct S { long x; };\n")
    result = run("pub", "t", "--idl", str(idl))
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"loanbus pub: error: {idl} has no @transfer_mode(SHMEM_REF) type to publish or subscribe to"
    )


def test_sub_gives_up_with_one_line_when_no_sample_comes_within_its_timeout(domain_id: int) -> None:
    result = run("sub", "quiet", "--idl", HELLO, "--timeout", "0.5", "--domain", str(domain_id))
    assert result.returncode == 1
    assert result.stderr.strip() == "loanbus sub: error: no sample on 'quiet' within 0.5 s"


def test_pub_gives_up_with_one_line_when_the_readers_it_waits_for_do_not_come(domain_id: int) -> None:
    result = run(
        "pub", "lonely", "--idl", HELLO, "--readers", "1", "--timeout", "0.5", "--domain", str(domain_id)
    )
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == "loanbus pub: error: fewer than 1 reader(s) of 'lonely' appeared within 0.5 s"
    )


def test_an_unknown_dds_profile_is_one_line_naming_the_variable(domain_id: int) -> None:
    result = run("ls", "--domain", str(domain_id), env={"LOANBUS_DDS_PROFILE": "lo"})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"loanbus ls: error: cannot join DDS domain {domain_id}: LOANBUS_DDS_PROFILE is 'lo', not a "
        "profile: use 'default' or 'loopback'"
    ]
