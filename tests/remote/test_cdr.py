"""The pre-encoder writes exactly the bytes of the binding's own serializer, and reads them back."""

from __future__ import annotations

import random
import re
import tempfile
import typing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import loanbus
import loanbus.idl
from loanbus._byvalue import CdrCodec, DecodeError
from loanbus._transport.values import ValueType, _schema, derive_twin
from loanbus.idl.checker import check

from ..idl.test_property import fill, idl_files

pytestmark = pytest.mark.portable  # .ci/run runs it on every supported Python

IDL = Path(__file__).resolve().parents[2] / "idl"


def codecs(vt: ValueType) -> dict[int, CdrCodec]:
    idl = vt.twin.__idl__  # type: ignore[attr-defined]
    schemas = {1: _schema(idl.v1_machine), 2: _schema(idl.v2_machine)}
    return {v: CdrCodec(vt.dtype, schemas, v) for v in (1, 2)}


def raw(sample: np.ndarray[Any, Any]) -> memoryview:
    return memoryview(sample.reshape(1).view(np.uint8).data)


def assert_same_as_binding(vt: ValueType, sample: np.ndarray[Any, Any], twin_value: Any) -> None:
    for version, codec in codecs(vt).items():
        expected = twin_value.serialize(use_version_2=version == 2)
        ours = bytes(codec.encode(raw(sample)))
        assert ours[: len(expected)] == expected, f"XCDR{version} differs"
        assert len(ours) == (len(expected) + 3) & ~3 and not any(ours[len(expected) :])
        # And back: the binding's bytes (either version) decode to the very same sample.
        assert codec.decode(expected).tobytes() == sample.tobytes()


@st.composite
def appendable_idl(draw: st.DrawFn) -> str:
    """Random IDL structs, some of them @appendable (XCDR2 then adds DHEADERs)."""
    text = draw(idl_files())
    return re.sub(
        r"(?<!@final )struct S(\d)", lambda m: ("@appendable " if draw(st.booleans()) else "") + m[0], text
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(appendable_idl(), st.randoms(use_true_random=False))
def test_random_idl_types_encode_byte_for_byte_like_the_binding(text: str, rng: random.Random) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        idl = Path(tmp) / "random.idl"
        idl.write_text(text)
        spec = check(str(idl))
        module = loanbus.idl.load(idl)
    (cls,) = module.LOANABLE
    sample = cls()
    fill(spec.loanable[0], sample.array, rng)
    stype = cls.__shmem_type__
    vt = ValueType(stype.name, stype.dtype, stype.by_value)
    assert vt.codec is not None, vt.reason
    assert_same_as_binding(vt, sample.array, sample.to_by_value())


@pytest.mark.parametrize("name", ["Image", "PointCloud", "HelloWorld"])
def test_shipped_idl_types_encode_like_the_binding(name: str) -> None:
    module = loanbus.idl.load(IDL / f"{name}.idl")
    (cls,) = module.LOANABLE
    sample = cls()
    rng = np.random.default_rng(5)
    if name == "Image":
        sample.width, sample.height, sample.sequence = 1920, 1080, 7
        sample.pixels[:] = rng.integers(0, 256, sample.pixels.shape)
    elif name == "PointCloud":
        sample.sensor_id = 3
        sample.header.frame_id = "lidar"
        points = sample.resize("points", 1000)
        points["x"] = rng.random(1000)
        points["kind"] = 2
    else:
        sample.id = 9
        sample.raw_image_data[:4096] = rng.integers(32, 127, 4096)
    stype = cls.__shmem_type__
    vt = ValueType(stype.name, stype.dtype, stype.by_value)
    assert_same_as_binding(vt, sample.array, sample.to_by_value())


def _twin_value(twin: Any, sample: np.ndarray[Any, Any]) -> Any:
    """A derived twin's instance holding a sample (what a plain Cyclone user would build)."""
    hints = twin.__annotations__
    values = {}
    for name in sample.dtype.names:
        v = sample[name]
        if v.dtype.names is not None and v.ndim:
            element = typing.get_args(typing.get_args(hints[name])[0])[0]  # Annotated[Sequence[E], ...]
            values[name] = [_twin_value(element, v[i]) for i in range(v.shape[0])]
        elif v.dtype.names is not None:
            values[name] = _twin_value(hints[name], v)
        elif v.dtype == np.uint8 and v.ndim:
            values[name] = (
                v.tobytes() if v.ndim == 1 else [row.tobytes() for row in v.reshape(-1, v.shape[-1])]
            )
        else:
            values[name] = v.tolist()
    return twin(**values)


PLAIN_TYPES = [
    np.dtype([("a", "<u4"), ("b", "<f8"), ("c", "?"), ("d", "<i2", (3,))]),
    np.dtype([("hdr", [("x", "u1"), ("y", "<f8")]), ("m", "<f4", (2, 3)), ("k", "i1")]),
    # Arrays of structs whose wire layout drifts from memory (the element-by-element path).
    np.dtype([("pts", [("i", "<i4"), ("d", "<f8"), ("s", "<i2")], (5,)), ("tail", "u1")]),
    np.dtype([("pts", [("x", "<f4"), ("y", "<f4"), ("z", "<f4")], (100,))]),
]


@pytest.mark.parametrize("dtype", PLAIN_TYPES, ids=range(len(PLAIN_TYPES)))
def test_plain_shmem_types_get_a_derived_twin_that_encodes_like_the_binding(dtype: np.dtype[Any]) -> None:
    stype = loanbus.ShmemType(f"demo::Plain{len(dtype.names or ())}", dtype)
    vt = ValueType(stype.name, stype.dtype, None)
    sample = np.zeros((), dtype=dtype)
    rng = np.random.default_rng(1)
    for name in dtype.names or ():
        flat = sample[name].reshape(-1) if sample[name].dtype.names is None else None
        if flat is not None:
            flat[...] = rng.integers(0, 2 if flat.dtype == np.bool_ else 100, flat.shape)
        else:
            for sub in sample[name].dtype.names:
                sample[name][sub] = rng.integers(0, 100, sample[name][sub].shape)
    assert_same_as_binding(vt, sample, _twin_value(vt.twin, sample))


def test_derived_twin_names_the_type_as_the_shmem_type() -> None:
    twin = derive_twin("demo::Frame", np.dtype([("a", "<u4")]))
    assert twin.__idl_typename__ == "demo::Frame"  # type: ignore[attr-defined]


def test_malformed_by_value_samples_are_refused_not_misread() -> None:
    module = loanbus.idl.load(IDL / "PointCloud.idl")
    (cls,) = module.LOANABLE
    stype = cls.__shmem_type__
    vt = ValueType(stype.name, stype.dtype, stype.by_value)
    good = cls()
    good.resize("points", 3)
    data = bytes(vt.codec.encode(raw(good.array)))  # type: ignore[union-attr]
    with pytest.raises(DecodeError):
        vt.decode(data[:40])  # truncated
    with pytest.raises(DecodeError):
        vt.decode(b"\x00\x00\x00\x00" + data[4:])  # big-endian header
    bad = bytearray(data)
    seq_len_at = len(data) - 3 * 20 - 4
    bad[seq_len_at : seq_len_at + 4] = (200_000).to_bytes(4, "little")
    with pytest.raises(DecodeError):
        vt.decode(bytes(bad))
