"""Fields of a loanable sample from the command line: ``--set a.b=VALUE`` and one-line summaries.

Pure numpy, no DDS: ``loanbus pub`` prepares its assignments here before it joins a domain,
so a bad ``--set`` is refused at once; ``loanbus sub`` prints ``summary()`` of what it takes.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_SUMMARY_FIELDS = 12


class FieldError(ValueError):
    """A ``--set`` that names no field or a value the field cannot hold (one line)."""


@dataclass(frozen=True)
class Assignment:
    """``path`` (field names, outermost first) gets ``value``, already converted to the field."""

    path: tuple[str, ...]
    value: np.ndarray[Any, Any]

    def apply(self, sample: np.ndarray[Any, Any]) -> None:
        field_view(sample, self.path)[...] = self.value


def field_view(sample: np.ndarray[Any, Any], path: tuple[str, ...]) -> np.ndarray[Any, Any]:
    """The writable view of a (nested) field of a 0-d structured sample."""
    view = sample
    for depth, name in enumerate(path):
        names = view.dtype.names
        if names is None or name not in names:
            where = ".".join(path[:depth]) or "the sample"
            fields = ", ".join(names) if names else "none: it is not a struct"
            raise FieldError(f"no field {'.'.join(path[: depth + 1])!r} ({where} has fields: {fields})")
        view = view[name]
    return view


def _is_bounded_string(dtype: np.dtype[Any]) -> bool:
    """The IDL compiler's ``string<N>``: a struct of ``len`` and a ``data`` byte array."""
    return dtype.names == ("len", "data") and dtype["data"].base == np.uint8


def parse_value(text: str) -> Any:
    """A Python literal (``3``, ``-1.5``, ``True``, ``[1, 2]``), otherwise the text itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def _convert(view: np.ndarray[Any, Any], value: Any, where: str) -> np.ndarray[Any, Any]:
    """``value`` as an array of the field's dtype and shape (strings fill byte arrays)."""
    dtype = view.dtype
    out = np.zeros(view.shape, dtype=dtype)
    if _is_bounded_string(dtype) and isinstance(value, str):
        raw = value.encode()
        room = dtype["data"].shape[0]
        if len(raw) > room:
            raise FieldError(f"{where}: {len(raw)} bytes do not fit the field's {room}")
        out["len"] = len(raw)
        out["data"][..., : len(raw)] = np.frombuffer(raw, dtype=np.uint8)
        return out
    if isinstance(value, str) and dtype.kind in "iu" and dtype.itemsize == 1 and view.ndim == 1:
        raw = value.encode()
        if len(raw) > view.shape[0]:
            raise FieldError(f"{where}: {len(raw)} bytes do not fit {view.shape[0]} characters")
        out[: len(raw)] = np.frombuffer(raw, dtype=np.uint8).astype(dtype)
        return out
    if dtype.names is not None:
        raise FieldError(f"{where} is a struct: set its fields ({', '.join(dtype.names)})")
    try:
        arr = np.asarray(value)
        if arr.dtype.kind in "iub" and dtype.kind in "iu":
            info = np.iinfo(dtype)
            if arr.size and (arr.min() < info.min or arr.max() > info.max):
                raise FieldError(f"{where}: {value!r} does not fit {dtype} ({info.min}..{info.max})")
        if arr.dtype.kind not in "iufb":
            raise FieldError(f"{where}: {value!r} is not a number for a field of {dtype}")
        if arr.dtype.kind == "f" and dtype.kind in "iu":
            raise FieldError(f"{where}: {value!r} is not an integer for a field of {dtype}")
        out[...] = arr
    except (ValueError, TypeError) as exc:
        if isinstance(exc, FieldError):
            raise
        raise FieldError(f"{where}: cannot store {value!r} in a field of shape {view.shape}: {exc}") from None
    return out


def prepare(dtype: np.dtype[Any], assignments: list[str]) -> list[Assignment]:
    """Parse and check every ``FIELD=VALUE`` against ``dtype``; raises FieldError."""
    scratch = np.zeros((), dtype=dtype)
    out = []
    for text in assignments:
        name, sep, raw = text.partition("=")
        if not sep or not name.strip():
            raise FieldError(f"--set {text!r}: write FIELD=VALUE, for example id=7 or header.seq=3")
        path = tuple(p.strip() for p in name.split("."))
        try:
            view = field_view(scratch, path)
        except FieldError as exc:
            raise FieldError(f"--set {text}: {exc}") from None
        out.append(Assignment(path, _convert(view, parse_value(raw.strip()), f"--set {text}")))
    return out


def counter_field(dtype: np.dtype[Any], taken: set[tuple[str, ...]]) -> tuple[str, ...] | None:
    """The first top-level integer scalar field not set by ``--set``: where ``pub`` counts."""
    for name in dtype.names or ():
        sub = dtype[name]
        if sub.kind in "iu" and sub.shape == () and (name,) not in taken:
            return (name,)
    return None


def _number(x: Any) -> str:
    if isinstance(x, (float, np.floating)):
        return f"{float(x):.4g}"
    return str(x.item() if isinstance(x, np.generic) else x)


def _describe(name: str, view: np.ndarray[Any, Any], out: list[str]) -> None:
    dtype = view.dtype
    if _is_bounded_string(dtype) and view.ndim == 0:
        n = min(int(view["len"]), dtype["data"].shape[0])
        out.append(f"{name}={bytes(view['data'][:n]).decode(errors='replace')!r}")
    elif dtype.names is not None and view.ndim == 0:
        for sub in dtype.names:
            _describe(f"{name}.{sub}" if name else sub, view[sub], out)
    elif view.ndim == 0:
        out.append(f"{name}={_number(view[()])}")
    elif dtype.names is not None:
        out.append(f"{name}{list(view.shape)} of structs")
    else:
        shape = "x".join(map(str, view.shape))
        out.append(
            f"{name}[{shape}] min={_number(view.min())} max={_number(view.max())} mean={_number(view.mean())}"
        )


def summary(sample: np.ndarray[Any, Any]) -> str:
    """One line: scalar fields with their values, arrays with shape, min, max and mean."""
    parts: list[str] = []
    _describe("", sample, parts)
    if len(parts) > MAX_SUMMARY_FIELDS:
        parts = [*parts[:MAX_SUMMARY_FIELDS], f"... {len(parts) - MAX_SUMMARY_FIELDS} more"]
    return " ".join(parts)
