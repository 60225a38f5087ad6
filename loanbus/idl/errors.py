"""IDL errors and warnings: one position, one message, rendered the way compilers do.

``file:line:column: message`` on the first line, then the offending source line and a caret
under the column, so that editors can jump to it and people can see it.
"""

from __future__ import annotations

from dataclasses import dataclass

from loanbus.errors import LoanbusError


@dataclass(frozen=True)
class Pos:
    """A place in an IDL file: 1-based line and column."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


def source_line(pos: Pos, text: str) -> str | None:
    """The line of ``text`` (a whole file) that ``pos`` points into."""
    lines = text.splitlines()
    return lines[pos.line - 1] if 0 < pos.line <= len(lines) else None


def render(pos: Pos, message: str, line_text: str | None) -> str:
    """``file:line:column: message``, then the line and a caret under the column."""
    head = f"{pos}: {message}"
    if line_text is None:
        return head
    # Keep tabs in the caret line so the caret sits under the column in any terminal.
    prefix = "".join(c if c == "\t" else " " for c in line_text[: pos.column - 1])
    return f"{head}\n{line_text}\n{prefix}^"


class IdlError(LoanbusError):
    """An IDL file loanbus refuses; ``pos`` says where and ``message`` says why."""

    def __init__(self, pos: Pos, message: str, line_text: str | None = None) -> None:
        super().__init__(f"{pos}: {message}")
        self.pos = pos
        self.message = message
        self.line_text = line_text

    def with_source(self, text: str) -> IdlError:
        """The same error carrying its source line (``text`` is the whole file)."""
        return IdlError(self.pos, self.message, source_line(self.pos, text))

    def render(self) -> str:
        """The full report: location and message, then the line and a caret."""
        return render(self.pos, self.message, self.line_text)

    def __str__(self) -> str:
        return self.render()


@dataclass(frozen=True)
class IdlWarning:
    """What an IDL file may say but will not work as written on this machine."""

    pos: Pos
    message: str
    line_text: str | None = None

    def render(self) -> str:
        """Like an error's report, with ``warning:`` before the message."""
        return render(self.pos, f"warning: {self.message}", self.line_text)
