"""``loanbus.record``: loanbus topics into an MCAP file, one CDR channel per topic.

Each topic's channel carries the type's IDL text as its ``omgidl`` schema and the exact
type description in its metadata (``loanbus.type``); image-like topics also get a Foxglove
image channel. ``close()`` (also on Ctrl-C) finishes the file with its summary section and
a metadata record ``loanbus.recording`` that says what was counted per topic.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict
from pathlib import Path

from loanbus.recording.bridge import Bridge, Status
from loanbus.recording.sink import McapSink

#: The name of the metadata record a recording ends with.
METADATA_NAME = "loanbus.recording"


class Recorder(Bridge):
    """Records loanbus topics of ``domain_id`` into the MCAP file ``path`` until closed.

    ``topics`` names the topics (their types are found by discovery among ``types``) or
    maps names to types; ``all_topics=True`` records every loanbus topic whose type is known.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        domain_id: int = 0,
        topics: Iterable[str] | Mapping[str, object] = (),
        types: Iterable[object] = (),
        all_topics: bool = False,
        compression: str = "zstd",
        images: str = "raw",
        reliable: bool = False,
        overwrite: bool = False,
    ) -> None:
        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise FileExistsError(f"{self.path} exists; choose another name or overwrite it (--overwrite)")
        self._mcap = McapSink(self.path, compression=compression, overwrite=overwrite)
        self._wall_start = time.time_ns()
        self._domain = domain_id
        super().__init__(
            self._mcap,
            domain_id=domain_id,
            topics=topics,
            types=types,
            all_topics=all_topics,
            images=images,
            reliable=reliable,
        )

    def _finish(self) -> None:
        status = self.status()
        values = {
            "domain": str(self._domain),
            "start_ns": str(self._wall_start),
            "end_ns": str(time.time_ns()),
            "samples": str(status.samples),
            "dropped": str(status.dropped),
            "inconsistent": str(status.inconsistent),
        }
        for t in status.topics:
            values[f"topic:{t.topic}"] = json.dumps(asdict(t), separators=(",", ":"))
        self._mcap.write_metadata(METADATA_NAME, values)


def record(
    path: str | Path,
    topics: Iterable[str] | Mapping[str, object] = (),
    *,
    domain_id: int = 0,
    types: Iterable[object] = (),
    all_topics: bool = False,
    duration: float | None = None,
    compression: str = "zstd",
    images: str = "raw",
    reliable: bool = False,
    overwrite: bool = False,
    on_status: Callable[[Status], None] | None = None,
    interval: float = 1.0,
) -> Status:
    """Record into ``path`` for ``duration`` seconds (None: until Ctrl-C); the final counts.

    ``on_status`` is called every ``interval`` seconds with the counts so far.
    """
    if duration is not None and duration < 0:
        raise ValueError(f"duration must not be negative, not {duration}")
    if interval <= 0:
        raise ValueError(f"interval must be positive, not {interval}")
    with Recorder(
        path,
        domain_id=domain_id,
        topics=topics,
        types=types,
        all_topics=all_topics,
        compression=compression,
        images=images,
        reliable=reliable,
        overwrite=overwrite,
    ) as recorder:
        deadline = None if duration is None else time.monotonic() + duration
        try:
            while deadline is None or time.monotonic() < deadline:
                left = interval if deadline is None else min(interval, deadline - time.monotonic())
                time.sleep(max(left, 0.0))
                if on_status is not None:
                    on_status(recorder.status())
        except KeyboardInterrupt:
            pass
    return recorder.status()


__all__ = ["METADATA_NAME", "Recorder", "record"]
