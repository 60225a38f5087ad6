"""Pure helpers of the command line: --set parsing, sample summaries, how ls names paths and slots."""

from __future__ import annotations

import json

import numpy as np
import pytest

from loanbus import _advert
from loanbus.cli._fields import FieldError, counter_field, prepare, summary
from loanbus.cli.ls import holds_by_reader, slot_states
from loanbus.inspect import PoolEntry, SlotView
from loanbus.observe import reader_path

DT = np.dtype(
    [
        ("id", "<u2"),
        ("name", [("len", "<u4"), ("data", "u1", (8,))]),
        ("pose", [("x", "<f4"), ("y", "<f4")]),
        ("pixels", "u1", (2, 3)),
    ]
)


def _apply(*assignments: str) -> np.ndarray:
    sample = np.zeros((), dtype=DT)
    for a in prepare(DT, list(assignments)):
        a.apply(sample)
    return sample


def test_set_fills_scalars_nested_fields_bounded_strings_and_broadcasts_into_arrays() -> None:
    s = _apply("id=7", "name=cam0", "pose.y=-1.5", "pixels=9")
    assert int(s["id"]) == 7 and float(s["pose"]["y"]) == -1.5
    assert int(s["name"]["len"]) == 4 and bytes(s["name"]["data"][:4]) == b"cam0"
    assert (s["pixels"] == 9).all()
    assert summary(s) == "id=7 name='cam0' pose.x=0 pose.y=-1.5 pixels[2x3] min=9 max=9 mean=9"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("nope=1", "no field 'nope' (the sample has fields: id, name, pose, pixels)"),
        ("pose.z=1", "no field 'pose.z' (pose has fields: x, y)"),
        ("id=70000", "does not fit uint16 (0..65535)"),
        ("id=-1", "does not fit uint16"),
        ("id=1.5", "not an integer"),
        ("id=abc", "'abc' is not a number"),
        ("pose=1", "is a struct: set its fields (x, y)"),
        ("name=much too long", "do not fit"),
        ("pixels=[1, 2]", "cannot store"),
        ("id", "write FIELD=VALUE"),
    ],
)
def test_a_bad_set_is_one_line_naming_the_option(text: str, says: str) -> None:
    with pytest.raises(FieldError) as err:
        prepare(DT, [text])
    message = str(err.value)
    assert "\n" not in message and says in message and message.startswith("--set ")


def test_pub_counts_in_the_first_integer_field_not_set() -> None:
    assert counter_field(DT, set()) == ("id",)
    assert counter_field(DT, {("id",)}) is None


def _reader(**kw: object) -> dict[str, object]:
    fields = {"reader_id": "ab" * 16, "host": "h1", "uid": 1000, "pid": 7, "shm": True, **kw}
    return json.loads(_advert.encode_reader(_advert.ReaderAdvert(**fields)))  # type: ignore[arg-type]


def _writer(**kw: object) -> dict[str, object]:
    fields = {
        "segment": "/loanbus.d1.t-0.x", "host": "h1", "abi": 1, "type_hash": "00" * 16, "slots": 2,
        "stride": 4096, "writer_guid": "cd" * 16, "pid": 8, "uid": 1000, "type_name": "T", **kw,
    }  # fmt: skip
    return json.loads(_advert.encode_writer(_advert.WriterAdvert(**fields)))  # type: ignore[arg-type]


def test_a_reader_path_comes_from_its_advert_else_from_the_rule_against_each_writer() -> None:
    assert reader_path({**_reader(), "path": "by-value"}, [], True, True) == "by-value"  # said so
    assert reader_path(_reader(), [_writer()], True, True) == "zero-copy"  # same host, user, type
    assert reader_path(_reader(), [_writer(host="h2")], True, False) == "by-value"  # another host
    assert reader_path(_reader(by_value=True), [_writer()], True, True) == "by-value"  # asked for it
    mixed = [_writer(), _writer(uid=0, writer_guid="ef" * 16)]  # another user's pool is not trusted
    assert reader_path(_reader(), mixed, True, True) == "zero-copy, by-value"
    assert reader_path(_reader(), [], True, True) == "zero-copy"  # no writer yet: what it would do
    assert reader_path(_reader(), [], True, None) == "?"
    assert reader_path(None, [_writer()], True, None) == "?"  # no loanbus advert at all
    assert reader_path(None, [], False, None) == "by-value"  # a plain DDS reader of the topic


def test_ls_writes_one_letter_per_slot_and_names_what_each_reader_holds() -> None:
    slots = tuple(
        SlotView(i, state, seq, 0, held)
        for i, (state, seq, held) in enumerate([("WRITTEN", 4, (1,)), ("LOANED", 5, ()), ("FREE", 0, ())])
    )
    pool = PoolEntry("/loanbus.d3.t-0.x", 0, True, slots=slots, readers=("", "ab" * 16))
    assert slot_states(pool) == "WLF" and pool.domain_id == 3
    assert holds_by_reader(pool) == {"ab" * 16: [0]}
    many = PoolEntry("/x", 0, True, slots=tuple(SlotView(i, "FREE", 0, 0, ()) for i in range(100)))
    assert slot_states(many) == "F100"
