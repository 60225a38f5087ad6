"""A loanable type as a JSON document, so ``loanbus play`` rebuilds it from a file alone.

The recorder stores it in each channel's metadata (key ``loanbus.type``) next to the IDL
text of the schema. It is exact where IDL is not: every offset, the item size (padding
included), the sample shape, and the 16-byte type hash, which the rebuilt type must
reproduce, so a writer of the rebuilt type is the same type to every reader. Pure.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from loanbus.types import ShmemType

#: The channel metadata keys the recorder writes.
TYPE_KEY = "loanbus.type"
TYPE_NAME_KEY = "loanbus.type_name"
VERSION = 1


class TypeDescriptionError(ValueError):
    """A ``loanbus.type`` document that does not describe a loanable type."""


def dtype_to_json(dtype: np.dtype[Any]) -> Any:
    """Plain data for ``dtype``: structs with names, offsets and item size; sub-arrays; scalars."""
    if dtype.names is not None and dtype.fields is not None:
        return {
            "names": list(dtype.names),
            "formats": [dtype_to_json(dtype.fields[n][0]) for n in dtype.names],
            "offsets": [int(dtype.fields[n][1]) for n in dtype.names],
            "itemsize": int(dtype.itemsize),
        }
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        return {"base": dtype_to_json(base), "shape": [int(n) for n in shape]}
    return dtype.str


def dtype_from_json(doc: Any, where: str = "dtype") -> np.dtype[Any]:
    """The inverse of :func:`dtype_to_json`; :class:`TypeDescriptionError` names what is wrong."""
    try:
        if isinstance(doc, str):
            return np.dtype(doc)
        if isinstance(doc, dict) and set(doc) == {"base", "shape"}:
            shape = tuple(int(n) for n in doc["shape"])
            return np.dtype((dtype_from_json(doc["base"], where), shape))
        if isinstance(doc, dict) and set(doc) == {"names", "formats", "offsets", "itemsize"}:
            names = [str(n) for n in doc["names"]]
            formats = [dtype_from_json(f, f"{where}.{n}") for n, f in zip(names, doc["formats"], strict=True)]
            offsets = [int(o) for o in doc["offsets"]]
            spec = {"names": names, "formats": formats, "offsets": offsets, "itemsize": int(doc["itemsize"])}
            return np.dtype(spec)  # type: ignore[call-overload,no-any-return]
    except (TypeError, ValueError) as exc:
        raise TypeDescriptionError(f"{where}: {exc}") from exc
    raise TypeDescriptionError(f"{where}: not a dtype description: {doc!r}")


def describe(stype: ShmemType) -> str:
    """The ``loanbus.type`` document of ``stype``."""
    doc = {
        "version": VERSION,
        "name": stype.name,
        "dtype": dtype_to_json(stype.dtype),
        "shape": list(stype.shape),
        "type_hash": stype.type_hash.hex(),
    }
    return json.dumps(doc, separators=(",", ":"))


def rebuild(text: str) -> ShmemType:
    """The ShmemType a ``loanbus.type`` document describes, with the type hash it names."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise TypeDescriptionError(f"not JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        raise TypeDescriptionError(f"not a version {VERSION} loanbus type description")
    name, shape, want = doc.get("name"), doc.get("shape"), doc.get("type_hash")
    if not isinstance(name, str) or not isinstance(shape, list) or not isinstance(want, str):
        raise TypeDescriptionError("a type description needs name, shape and type_hash")
    dtype = dtype_from_json(doc.get("dtype"), name)
    try:
        stype = ShmemType(name, dtype, shape=tuple(int(n) for n in shape))
    except (TypeError, ValueError) as exc:
        raise TypeDescriptionError(f"{name}: {exc}") from exc
    if stype.type_hash.hex() != want:
        raise TypeDescriptionError(
            f"{name}: the described layout has type hash {stype.type_hash.hex()}, "
            f"not {want} as recorded (a numpy that builds the dtype differently?)"
        )
    return stype


__all__ = [
    "TYPE_KEY",
    "TYPE_NAME_KEY",
    "TypeDescriptionError",
    "describe",
    "dtype_from_json",
    "dtype_to_json",
    "rebuild",
]
