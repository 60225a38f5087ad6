"""The slot lifecycle as a pure transition table: FREE -> LOANED -> WRITTEN -> (LOANED | FREE).

No I/O here: the pool stores the state word in shared memory and asks this table whether an
event is allowed. The table is the single description of the lifecycle; the docs' diagram
is generated from it.
"""

from __future__ import annotations

import enum


class SlotState(enum.IntEnum):
    FREE = 0
    LOANED = 1
    WRITTEN = 2


class SlotEvent(enum.Enum):
    LOAN = "get_loan"
    WRITE = "write"
    DISCARD = "discard_loan"
    REUSE = "get_loan (reuse)"
    RELEASE = "release"

    # Members are singletons: identity hashing (in C) instead of Enum's hash of the name in
    # Python, which the table lookup of every get_loan and write paid (found with py-spy).
    __hash__ = object.__hash__


TRANSITIONS: dict[tuple[SlotState, SlotEvent], SlotState] = {
    (SlotState.FREE, SlotEvent.LOAN): SlotState.LOANED,
    (SlotState.LOANED, SlotEvent.WRITE): SlotState.WRITTEN,
    (SlotState.LOANED, SlotEvent.DISCARD): SlotState.FREE,
    (SlotState.WRITTEN, SlotEvent.REUSE): SlotState.LOANED,
    (SlotState.WRITTEN, SlotEvent.RELEASE): SlotState.FREE,
}


class SlotTransitionError(Exception):
    """An event that the lifecycle does not allow in the slot's current state."""

    def __init__(self, state: SlotState, event: SlotEvent) -> None:
        super().__init__(f"{event.value} is not allowed on a {state.name} slot")
        self.state = state
        self.event = event


def next_state(state: SlotState, event: SlotEvent) -> SlotState:
    """The state after ``event``; raises SlotTransitionError where the table has no entry."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise SlotTransitionError(state, event) from None


def transitions_on(event: SlotEvent) -> dict[SlotState, SlotState]:
    """``state -> next state`` for one event, derived from TRANSITIONS: a lookup keyed by the
    state alone is cheaper on the hot path than a (state, event) tuple."""
    return {src: dst for (src, ev), dst in TRANSITIONS.items() if ev is event}


def mermaid_diagram() -> str:
    """The lifecycle as a Mermaid state diagram (used by the docs)."""
    lines = ["stateDiagram-v2", "    [*] --> FREE"]
    for (src, event), dst in TRANSITIONS.items():
        lines.append(f"    {src.name} --> {dst.name}: {event.value}")
    return "\n".join(lines)
