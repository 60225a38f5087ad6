"""SamplePool: one writer's slots in shared memory, slot choice, holds and statistics (no DDS).

``WriterPool`` owns and creates the segment; ``ReaderPool`` attaches to it read-only.
docs/shm-layout.md describes the segment and the consistency protocol byte by byte.
"""

from loanbus.pool.names import is_pool_name, segment_name, shm_prefix, socket_path, topic_prefix
from loanbus.pool.reader import ReaderPool
from loanbus.pool.writer import WriterPool, WriterPoolStatistics

__all__ = [
    "ReaderPool",
    "WriterPool",
    "WriterPoolStatistics",
    "is_pool_name",
    "segment_name",
    "shm_prefix",
    "socket_path",
    "topic_prefix",
]
