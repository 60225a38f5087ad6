"""Output that fits the terminal: a table where it fits, the same facts stacked where it does not.

rich takes the width from the terminal (or ``COLUMNS``). A table wider than that would fold
its cells into fragments, so below that width ``ls`` and ``top`` print each row as a heading
line and its cells as ``column: value`` pairs packed into indented lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console, Group, RenderableType
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

INDENT = 2
GAP = "  "


@dataclass(frozen=True)
class Item:
    """One table row as the stacked layout shows it: a heading, then ``label: value`` pairs
    (values may hold rich markup)."""

    heading: str
    fields: Sequence[tuple[str, str]]


def fits(console: Console, table: Table) -> bool:
    """True when ``table`` shows every cell on one line within the console's width."""
    unlimited = console.options.update_width(1 << 20)  # the width it takes when nothing folds
    return Measurement.get(console, unlimited, table).maximum <= console.width


def stacked(title: str, items: Sequence[Item], width: int, caption: str | None = None) -> Group:
    """``title``, then per item its heading and its fields packed into indented lines that fit
    ``width`` (a value longer than a line wraps, indented like the rest)."""
    out: list[RenderableType] = [Text(title, style="bold")]
    room = max(width - INDENT, 20)
    for item in items:
        out.append(Text(item.heading, style="bold", overflow="fold"))
        lines: list[Text] = []
        line = Text()
        for label, value in item.fields:
            pair = Text.from_markup(f"{label}: {value}" if label else value)
            if line and line.cell_len + len(GAP) + pair.cell_len > room:
                lines.append(line)
                line = Text()
            if line:
                line.append(GAP)
            line.append_text(pair)
        if line:
            lines.append(line)
        out += [Padding(text, (0, 0, 0, INDENT)) for text in lines]
    if caption:
        out.append(Text(caption, style="italic"))
    return Group(*out)


def fit(console: Console, table: Table, items: Sequence[Item]) -> RenderableType:
    """``table`` if it fits the console, else its rows stacked under its title."""
    if fits(console, table):
        return table
    title = table.title if isinstance(table.title, str) else ""
    caption = table.caption if isinstance(table.caption, str) else None
    return stacked(title, items, console.width, caption)
