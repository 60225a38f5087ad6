"""The slot lifecycle as a pure transition table (no I/O)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loanbus._slotstate import (
    TRANSITIONS,
    SlotEvent,
    SlotState,
    SlotTransitionError,
    mermaid_diagram,
    next_state,
)


def test_a_free_slot_is_loaned_then_written_then_reused() -> None:
    state = next_state(SlotState.FREE, SlotEvent.LOAN)
    assert state is SlotState.LOANED
    state = next_state(state, SlotEvent.WRITE)
    assert state is SlotState.WRITTEN
    assert next_state(state, SlotEvent.REUSE) is SlotState.LOANED


def test_discarding_a_loan_frees_the_slot() -> None:
    assert next_state(SlotState.LOANED, SlotEvent.DISCARD) is SlotState.FREE


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (SlotState.FREE, SlotEvent.WRITE),
        (SlotState.FREE, SlotEvent.DISCARD),
        (SlotState.WRITTEN, SlotEvent.WRITE),
        (SlotState.WRITTEN, SlotEvent.DISCARD),
        (SlotState.LOANED, SlotEvent.LOAN),
    ],
)
def test_events_the_lifecycle_forbids_raise(state: SlotState, event: SlotEvent) -> None:
    with pytest.raises(SlotTransitionError) as info:
        next_state(state, event)
    assert info.value.state is state and info.value.event is event


def test_every_state_is_reachable_and_has_a_way_out() -> None:
    sources = {s for s, _ in TRANSITIONS}
    targets = set(TRANSITIONS.values())
    assert sources == set(SlotState) == targets


@given(st.lists(st.sampled_from(list(SlotEvent)), max_size=50))
def test_any_event_sequence_either_follows_the_table_or_raises(events: list[SlotEvent]) -> None:
    state = SlotState.FREE
    for event in events:
        if (state, event) in TRANSITIONS:
            state = next_state(state, event)
        else:
            with pytest.raises(SlotTransitionError):
                next_state(state, event)
    assert state in SlotState


def test_the_diagram_names_every_transition() -> None:
    text = mermaid_diagram()
    for (src, event), dst in TRANSITIONS.items():
        assert f"{src.name} --> {dst.name}: {event.value}" in text
    assert len(list(itertools.chain(TRANSITIONS))) == text.count("-->") - 1
