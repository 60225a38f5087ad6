"""The ``loanbus.type`` metadata: a type rebuilt from it is the same type (same type hash)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import loanbus
import loanbus.idl
from loanbus.recording.typedesc import TypeDescriptionError, describe, rebuild

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "stype",
    [
        loanbus.idl.load(ROOT / "idl" / "Image.idl").Image.__shmem_type__,
        loanbus.idl.load(ROOT / "idl" / "PointCloud.idl").PointCloud.__shmem_type__,
        loanbus.ShmemType(
            "demo::Padded",
            np.dtype(
                {"names": ["a", "b"], "formats": ["<u2", ("<f8", (2, 3))], "offsets": [0, 16], "itemsize": 72}
            ),
        ),
        loanbus.ShmemType("blob::Big", np.dtype("<u2"), shape=(4, 5)),
    ],
    ids=["image", "pointcloud", "padded", "shaped"],
)
def test_a_type_description_rebuilds_the_same_type(stype: loanbus.ShmemType) -> None:
    again = rebuild(describe(stype))
    assert again == stype
    assert again.dtype == stype.dtype and again.shape == stype.shape and again.name == stype.name


def test_a_description_whose_layout_does_not_match_its_hash_is_refused() -> None:
    doc = json.loads(describe(loanbus.ShmemType("x::Y", np.dtype([("a", "<u4")]))))
    doc["dtype"]["formats"] = ["<i4"]
    with pytest.raises(TypeDescriptionError, match="type hash"):
        rebuild(json.dumps(doc))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("not json", "not JSON"),
        ('{"version": 99}', "version 1"),
        ('{"version": 1, "name": "x::Y", "shape": [], "type_hash": "00", "dtype": {"names": 3}}', "x::Y"),
    ],
)
def test_a_broken_description_names_the_problem(text: str, problem: str) -> None:
    with pytest.raises(TypeDescriptionError, match=problem):
        rebuild(text)
