"""What writers and readers announce in their DDS user data (pure encode/decode, no DDS).

A writer advertises its pool; a reader says who it is and whether it maps pools. Both are
short JSON documents tagged ``loanbus``; anything else in user data is ignored.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any, TypeVar

TAG = "loanbus"
_A = TypeVar("_A", "WriterAdvert", "ReaderAdvert")
VERSION = 1


@dataclass(frozen=True)
class WriterAdvert:
    segment: str
    host: str
    abi: int
    type_hash: str
    slots: int
    stride: int
    writer_guid: str
    pid: int
    uid: int
    type_name: str
    group: int = -1  # the pool's group (Qos.shm_group), -1: none


@dataclass(frozen=True)
class ReaderAdvert:
    reader_id: str
    host: str
    uid: int
    pid: int
    shm: bool
    reliable: bool = True  # only a reliable reader returns the holds a reliable writer sets
    group: int = -1  # the group whose pools it trusts (Qos.shm_group), -1: none
    by_value: bool = False  # asked for by-value delivery even on the writer's host (Qos.by_value)
    type_hash: str = ""
    refs: str = "dds"  # where it takes references from: "local" (its inbox) or "dds"
    type_name: str = ""


def _encode(kind: str, body: dict[str, Any]) -> bytes:
    return json.dumps({TAG: VERSION, "kind": kind, **body}, separators=(",", ":")).encode()


def _decode(data: bytes, kind: str) -> dict[str, Any] | None:
    try:
        doc = json.loads(data.decode())
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get(TAG) != VERSION or doc.get("kind") != kind:
        return None
    doc.pop(TAG)
    doc.pop("kind")
    return doc


def peek(data: bytes) -> dict[str, Any] | None:
    """The loanbus document in user data, of any kind and with every field kept (for tools
    such as ``loanbus ls``, which show fields newer versions add); None if there is none."""
    try:
        doc = json.loads(data.decode())
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get(TAG) != VERSION or not isinstance(doc.get("kind"), str):
        return None
    return doc


def encode_doc(doc: dict[str, Any]) -> bytes:
    """A document from ``peek`` as user data again (so the typed decoders can read it)."""
    return json.dumps(doc, separators=(",", ":")).encode()


def encode_writer(advert: WriterAdvert) -> bytes:
    return _encode("writer", asdict(advert))


def encode_reader(advert: ReaderAdvert) -> bytes:
    return _encode("reader", asdict(advert))


_TYPES = {"str": str, "int": int, "bool": bool}


def _build(cls: type[_A], doc: dict[str, Any] | None) -> _A | None:
    """``cls(**doc)`` if every field is present (or defaulted) with the right JSON type."""
    if doc is None:
        return None
    for f in fields(cls):
        if f.name not in doc:
            if f.default is MISSING:
                return None
            continue
        value, wanted = doc[f.name], _TYPES[str(f.type)]
        if not isinstance(value, wanted) or (wanted is int and isinstance(value, bool)):
            return None
    try:
        return cls(**doc)
    except TypeError:  # unknown keys
        return None


def decode_writer(data: bytes) -> WriterAdvert | None:
    """The writer's advert, or None if the user data is not a well-formed loanbus advert."""
    advert = _build(WriterAdvert, _decode(data, "writer"))
    if advert is not None:
        try:
            if len(bytes.fromhex(advert.writer_guid)) != 16:
                return None
        except ValueError:
            return None
    return advert


def decode_reader(data: bytes) -> ReaderAdvert | None:
    """The reader's advert, or None if the user data is not a well-formed loanbus advert."""
    advert = _build(ReaderAdvert, _decode(data, "reader"))
    if advert is not None:
        try:
            if len(bytes.fromhex(advert.reader_id)) != 16:
                return None
        except ValueError:
            return None
    return advert


def maps_zero_copy(writer: WriterAdvert, reader: ReaderAdvert) -> bool:
    """Whether ``reader`` reads ``writer``'s samples from its pool (else it needs them by value).

    Writer and reader both apply this one rule: same host identity, a pool the reader
    trusts (same user, or the group it names), the same type, and no by-value request.
    """
    return (
        reader.shm
        and not reader.by_value
        and writer.host == reader.host
        and (not reader.type_hash or reader.type_hash == writer.type_hash)
        and (reader.uid == writer.uid or (writer.group >= 0 and writer.group == reader.group))
    )


def type_mismatch(writer: WriterAdvert, reader: ReaderAdvert) -> str | None:
    """In the user's words, why a writer and a reader of one topic do not communicate because
    their types differ (name, fields, sizes: the type hash says); None if the types agree."""
    if not reader.type_hash or reader.type_hash == writer.type_hash:
        return None
    return (
        f"the writer in pid {writer.pid} publishes {writer.type_name!r} (type hash {writer.type_hash}), "
        f"the reader in pid {reader.pid} expects {reader.type_name or '?'!r} (type hash "
        f"{reader.type_hash}): they do not communicate; give both the same type (the same IDL "
        "struct, or a ShmemType of the same name and dtype)"
    )
