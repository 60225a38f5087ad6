"""The corpus: every good file compiles; every bad file is refused with the exact message at
the exact place its first line announces (``// expect: [FILE:]LINE:COLUMN: message``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import loanbus.idl
from loanbus.idl import IdlError
from loanbus.idl.checker import check

from .ctools import BAD, CORPUS, GOOD, INCLUDE_DIRS

_EXPECT = re.compile(r"// expect: (?:(?P<file>[^:]+):)?(?P<line>\d+):(?P<column>\d+): (?P<message>.*)")


def _expectation(path: Path) -> tuple[str, int, int, str]:
    match = _EXPECT.fullmatch(path.read_text().splitlines()[0])
    assert match, f"{path.name}: first line must be // expect: LINE:COLUMN: message"
    return (match["file"] or path.name, int(match["line"]), int(match["column"]), match["message"])


@pytest.mark.parametrize("idl", GOOD, ids=[p.name for p in GOOD])
def test_good_file_compiles_to_types(idl: Path) -> None:
    module = loanbus.idl.load(idl, INCLUDE_DIRS)
    assert module.LOANABLE, "every good corpus file has a SHMEM_REF type"
    for cls in module.LOANABLE:
        assert cls.__shmem_type__.name == cls.type_name
        assert cls.__shmem_type__.dtype == cls.dtype


@pytest.mark.parametrize("idl", BAD, ids=[p.name for p in BAD])
def test_bad_file_is_refused_with_the_exact_message_and_position(
    idl: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file, line, column, message = _expectation(idl)
    monkeypatch.chdir(idl.parent)  # positions name files as the user wrote them
    with pytest.raises(IdlError) as info:
        check(idl.name)
    error = info.value
    assert (error.pos.file, error.pos.line, error.pos.column) == (file, line, column)
    assert error.message == message
    # The report shows the offending line with a caret under the column.
    first, shown, caret = error.render().split("\n")
    assert first == f"{file}:{line}:{column}: {message}"
    source = (idl.parent / file).read_text().splitlines()[line - 1]
    assert shown == source
    assert caret == " " * (column - 1) + "^"


def test_every_bad_file_announces_a_different_failure() -> None:
    messages = [_expectation(p)[3] for p in BAD]
    assert len(BAD) >= 50
    assert len(set(messages)) == len(messages)


def test_the_corpus_covers_the_refusals_the_issue_lists() -> None:
    names = {p.stem for p in BAD}
    required = {
        "unbounded_string", "unbounded_sequence", "union", "any", "valuetype", "interface",
        "unknown_type", "duplicate_struct", "array_zero", "array_negative", "recursive_direct",
        "too_large",
    }  # fmt: skip
    assert required <= names
    assert (CORPUS / "bad" / "include" / "broken.idl").is_file()
