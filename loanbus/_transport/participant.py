"""The process's Cyclone domains (one per domain id, shared) and loanbus's participant."""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass

from cyclonedds.domain import Domain
from cyclonedds.domain import DomainParticipant as _Participant
from cyclonedds.qos import Policy
from cyclonedds.qos import Qos as _Qos
from cyclonedds.topic import Topic as _Topic

from loanbus._transport.config import build_config, check_profile, profile_from_environment
from loanbus._transport.dds import _delete, _wrapped
from loanbus._transport.refs import LoanRef
from loanbus._transport.stats import StatsWriter
from loanbus.errors import TransportError

DEFAULT_LEASE = 10.0


@dataclass
class _DomainUse:
    domain: Domain | None
    lease: float
    profile: str
    users: int = 0


_domains: dict[int, _DomainUse] = {}
_domains_lock = threading.Lock()


def _acquire_domain(domain_id: int, lease_duration: float | None, profile: str | None) -> None:
    """Create the process's Cyclone domain with loanbus's configuration on first use.

    The domain is deleted again when its last participant closes. With ``CYCLONEDDS_URI``
    set, the user's configuration rules and loanbus creates no domain of its own.
    """
    if not 0 <= domain_id <= 232:
        raise ValueError(f"domain_id must be within 0..232, not {domain_id}")
    env_lease = os.environ.get("LOANBUS_LEASE_DURATION")
    lease = lease_duration or (float(env_lease) if env_lease else DEFAULT_LEASE)
    if profile is not None:
        check_profile(profile, "dds_profile")
    with _domains_lock:
        use = _domains.get(domain_id)
        if use is None:
            chosen = profile if profile is not None else profile_from_environment()
            domain: Domain | None = None
            if not os.environ.get("CYCLONEDDS_URI"):
                xml = build_config(lease_duration=lease, profile=chosen)
                with _wrapped(f"create domain {domain_id} ({chosen} profile)"):
                    domain = Domain(domain_id, xml)
            use = _domains[domain_id] = _DomainUse(domain, lease, chosen)
        else:
            if lease_duration is not None and abs(use.lease - lease_duration) > 1e-9:
                raise ValueError(
                    f"domain {domain_id} already runs with lease_duration={use.lease:g} s in this "
                    f"process; a participant cannot ask for {lease_duration:g} s"
                )
            if profile is not None and profile != use.profile:
                raise ValueError(
                    f"domain {domain_id} already runs with dds_profile={use.profile!r} in this "
                    f"process; a participant cannot ask for {profile!r}"
                )
        use.users += 1


def _release_domain(domain_id: int) -> None:
    with _domains_lock:
        use = _domains.get(domain_id)
        if use is None:
            return
        use.users -= 1
        if use.users <= 0:
            del _domains[domain_id]
            _delete(use.domain)


class TransportParticipant:
    """One Cyclone participant and the topics made in it."""

    _dp: _Participant | None = None
    _stats: StatsWriter | None = None

    def __init__(
        self, domain_id: int, *, lease_duration: float | None = None, dds_profile: str | None = None
    ) -> None:
        self._stats_lock = threading.Lock()
        _acquire_domain(domain_id, lease_duration, dds_profile)
        self.domain_id = domain_id
        try:
            program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
            name = f"loanbus {program} pid {os.getpid()}"
            qos = _Qos(Policy.EntityName(name), Policy.Userdata(name.encode()))
            with _wrapped(f"create a participant in domain {domain_id}"):
                self._dp = _Participant(domain_id, qos=qos)
        except BaseException:
            _release_domain(domain_id)
            raise
        self._topics: dict[str, _Topic] = {}

    @property
    def guid(self) -> str:
        return str(self._participant().get_guid())

    def stats_writer(self) -> StatsWriter:
        """The participant's writer of statistics documents (made on first use)."""
        with self._stats_lock:
            if self._stats is None:
                self._stats = StatsWriter(self)
            return self._stats

    def _participant(self) -> _Participant:
        if self._dp is None:
            raise TransportError("participant is closed")
        return self._dp

    def ref_topic(self, name: str) -> _Topic:
        topic = self._topics.get(name)
        if topic is None:
            with _wrapped(f"create topic {name!r}"):
                topic = _Topic(self._participant(), name, LoanRef)
            self._topics[name] = topic
        return topic

    def value_topic(self, name: str, twin: type) -> _Topic:
        """The plain DDS topic ``name`` with the by-value type ``twin``."""
        topic = self._topics.get(name)
        if topic is None:
            with _wrapped(f"create topic {name!r}"):
                topic = _Topic(self._participant(), name, twin)
            self._topics[name] = topic
        elif topic.data_type is not twin:
            raise TransportError(f"topic {name!r} already exists in this participant with another type")
        return topic

    def close(self) -> None:
        with self._stats_lock:
            stats, self._stats = self._stats, None
        if stats is not None:
            stats.close()
        dp, self._dp = self._dp, None
        if dp is not None:
            for topic in self._topics.values():
                _delete(topic)
            self._topics.clear()
            _delete(dp)
            _release_domain(self.domain_id)
