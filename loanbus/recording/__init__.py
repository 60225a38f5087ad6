"""Record, replay and look: loanbus topics to MCAP files and to Foxglove, live (docs/record.md).

``record()`` writes topics into an MCAP file (CDR messages with ``omgidl`` schemas, plus
Foxglove image channels for image-like types); ``play()`` republishes a file through loans
with the recorded timing; ``view()`` serves topics live to the Foxglove app over its
WebSocket protocol. Needs the extra ``loanbus[record]`` (foxglove-sdk and mcap).
"""

from loanbus.recording.bridge import Status
from loanbus.recording.catalog import TypeCatalog
from loanbus.recording.idltext import idl_text
from loanbus.recording.player import Player, PlayStatus, RecordingError, play
from loanbus.recording.recorder import METADATA_NAME, Recorder, record
from loanbus.recording.sink import COMPRESSIONS, MissingExtraError
from loanbus.recording.tap import IMAGE_MODES, IMAGE_SUFFIX, TopicStatus
from loanbus.recording.viewer import Viewer, view

__all__ = [
    "COMPRESSIONS",
    "IMAGE_MODES",
    "IMAGE_SUFFIX",
    "METADATA_NAME",
    "MissingExtraError",
    "PlayStatus",
    "Player",
    "Recorder",
    "RecordingError",
    "Status",
    "TopicStatus",
    "TypeCatalog",
    "Viewer",
    "idl_text",
    "play",
    "record",
    "view",
]
