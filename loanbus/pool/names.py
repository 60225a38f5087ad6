"""The names of a writer's files in /dev/shm: its pool segment and its registration socket."""

from __future__ import annotations

import hashlib
import os
import re

from loanbus._shm import SHM_DIR

# /loanbus[tag].d<domain>.<topic>-<hash>.<writer guid>
POOL_NAME = re.compile(
    r"/(loanbus[A-Za-z0-9_-]{0,32})\.d\d{1,3}\.[A-Za-z0-9_-]{1,40}-[0-9a-f]{8}\.[0-9a-f]{32}"
)
SOCKET_SUFFIX = ".sock"


def shm_prefix() -> str:
    """The name prefix of every loanbus segment; ``LOANBUS_SHM_PREFIX`` adds a tag (tests)."""
    tag = os.environ.get("LOANBUS_SHM_PREFIX", "")
    return "loanbus" + (re.sub(r"[^A-Za-z0-9_-]", "_", tag)[:32] if tag else "")


def segment_name(domain_id: int, topic_name: str, writer_guid: bytes) -> str:
    """``/loanbus[tag].d<domain>.<topic>-<hash>.<writer guid>``: unique, readable, short."""
    return topic_prefix(domain_id, topic_name) + writer_guid.hex()


def topic_prefix(domain_id: int, topic_name: str) -> str:
    """The part of ``segment_name`` shared by every writer of one topic in one domain."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", topic_name)[:40]
    digest = hashlib.blake2b(topic_name.encode(), digest_size=4).hexdigest()
    return f"/{shm_prefix()}.d{domain_id}.{safe}-{digest}."


def is_pool_name(name: object) -> bool:
    """Whether ``name`` has the form of a loanbus pool name (checked before any system call)."""
    return isinstance(name, str) and POOL_NAME.fullmatch(name) is not None


def socket_path(segment: str, writer_guid: bytes) -> str:
    """The writer's registration socket: ``/dev/shm/loanbus[tag].<writer guid>.sock``.

    Short on purpose (a socket path has at most 107 bytes), and named with the pool's
    prefix so that ``loanbus clean`` finds it with the pool.
    """
    match = POOL_NAME.fullmatch(segment)
    prefix = match.group(1) if match else shm_prefix()
    return os.path.join(SHM_DIR, f"{prefix}.{writer_guid.hex()}{SOCKET_SUFFIX}")
