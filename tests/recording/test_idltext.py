"""The omgidl schema text a recording carries: it compiles back to the layout it came from and
describes exactly the CDR bytes the recorder writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import loanbus
import loanbus.idl
from loanbus._transport import value_type
from loanbus.recording.idltext import identifier, idl_of_dtype, idl_text, recorded_dtype

ROOT = Path(__file__).resolve().parents[2]


def _compile(text: str, tmp_path: Path) -> Any:
    path = tmp_path / "schema.idl"
    path.write_text(text)
    return loanbus.idl.load(path)


def _struct_class(module: Any, type_name: str) -> Any:
    return next(v for v in vars(module).values() if getattr(v, "type_name", None) == type_name)


@pytest.mark.parametrize("idl", ["Image.idl", "PointCloud.idl", "HelloWorld.idl"])
def test_generated_types_render_to_idl_that_compiles_back_to_the_same_layout(
    idl: str, tmp_path: Path
) -> None:
    module = loanbus.idl.load(ROOT / "idl" / idl)
    for cls in module.LOANABLE:
        again = _struct_class(_compile(idl_text(cls), tmp_path), cls.type_name)
        assert again.dtype == cls.dtype
        assert again.type_hash == cls.__shmem_type__.type_hash


def test_the_point_cloud_keeps_its_enum_string_sequence_and_key() -> None:
    text = idl_text(loanbus.idl.load(ROOT / "idl" / "PointCloud.idl").PointCloud)
    assert "enum PointKind { UNKNOWN, GROUND, OBSTACLE, VEGETATION };" in text
    assert "string<64> frame_id;" in text
    assert "sequence<sensors::Point, 100000> points;" in text
    assert "@key unsigned short sensor_id;" in text
    assert text.index("struct Time") < text.index("struct Header") < text.index("struct PointCloud")


PLAIN = loanbus.ShmemType(
    "demo::Frame",
    np.dtype(
        {
            "names": ["seq", "hdr", "pixels", "when", "ok"],
            "formats": [
                "<u8",
                np.dtype([("a", "<u2"), ("b", "<f4"), ("c", "<c8")]),
                ("u1", (4, 3)),
                ("<M8[ns]", (2,)),
                "?",
            ],
            "offsets": [0, 8, 22, 40, 56],
            "itemsize": 64,
        }
    ),
)


def test_the_idl_of_a_plain_type_describes_the_cdr_bytes_its_by_value_codec_writes(tmp_path: Path) -> None:
    sample = np.zeros((), PLAIN.dtype)
    raw = sample.reshape(-1).view(np.uint8)
    raw[:] = np.arange(raw.size) * 7 % 251
    sample["ok"] = True
    cdr = bytes(value_type(PLAIN.name, PLAIN.dtype, None).encode(sample, raw.data))
    # cyclonedds's own deserializer, built from the IDL text alone, reads the same members back
    twin = _struct_class(_compile(idl_text(PLAIN), tmp_path), "demo::Frame").ByValue
    value = twin.deserialize(cdr)
    assert value.seq == int(sample["seq"])
    assert value.hdr.a == int(sample["hdr"]["a"])
    assert value.hdr.b == pytest.approx(float(sample["hdr"]["b"]))
    assert bytes(value.hdr.c) == sample["hdr"]["c"].tobytes()
    assert b"".join(value.pixels) == sample["pixels"].tobytes()
    assert [bytes(w) for w in value.when] == [w.tobytes() for w in sample["when"]]
    assert value.ok is True


def test_members_named_like_idl_keywords_are_escaped() -> None:
    assert identifier("module") == "_module"
    assert identifier("Sequence") == "_Sequence"
    assert identifier("frames") == "frames"
    text = idl_of_dtype("x::Y", np.dtype([("struct", "<u4"), ("value", "<f8")]))
    assert "unsigned long _struct;" in text and "double value;" in text


def test_a_shaped_type_is_recorded_as_one_value_member() -> None:
    blob = loanbus.ShmemType("blob::Big", np.dtype("<f4"), shape=(3, 5))
    assert recorded_dtype(blob) == np.dtype([("value", "<f4", (3, 5))])
    assert "float value[3][5];" in idl_text(blob)
    assert recorded_dtype(PLAIN) is PLAIN.dtype


def test_something_that_is_not_a_type_is_refused() -> None:
    with pytest.raises(TypeError, match="not a loanable type"):
        idl_text(42)
