"""The types a recorder or viewer knows, found by the type name a writer advertises.

A writer's DDS advert names its type and type hash, not its layout, so the process that
takes its samples must know the type: from generated classes or ShmemTypes handed to the
Python API, or from IDL files (``--idl``). Where several known types share a name, the
type hash of the writer's pool picks one.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from loanbus.types import as_shmem_type


class TypeCatalog:
    """Loanable types by their fully qualified name (``camera::Image``)."""

    def __init__(self, types: Iterable[object] = ()) -> None:
        self._by_name: dict[str, list[object]] = {}
        for t in types:
            self.add(t)

    def add(self, data_type: object) -> None:
        """Know ``data_type`` (a generated class or a ShmemType); a second one of the same hash is ignored."""
        stype = as_shmem_type(data_type)
        known = self._by_name.setdefault(stype.name.lstrip(":"), [])
        if all(as_shmem_type(k).type_hash != stype.type_hash for k in known):
            known.append(data_type)

    def add_idl(self, path: str | Path) -> list[str]:
        """Know every loanable type of an IDL file; returns their names. Raises ``loanbus.idl.IdlError``."""
        from loanbus.idl import load

        module = load(path)
        loanable = list(getattr(module, "LOANABLE", ()))
        for cls in loanable:
            self.add(cls)
        return [as_shmem_type(c).name for c in loanable]

    def lookup(self, type_name: str, type_hash: str | None = None) -> object | None:
        """The type called ``type_name`` (with ``type_hash``, hex, when given), or None."""
        known = self._by_name.get(type_name.lstrip(":"), [])
        if type_hash:
            return next((k for k in known if as_shmem_type(k).type_hash.hex() == type_hash), None)
        return known[0] if known else None

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_name.values())


__all__ = ["TypeCatalog"]
