"""The optional iceoryx2 comparison (``pip install iceoryx2``, or ``loanbus[bench]``).

A publish-subscribe service of a fixed-size ``ctypes`` uint8 array per direction, samples
loaned and filled in place, and an event service per direction so that the receiver blocks
in ``Listener.timed_wait`` instead of polling (the blocking wait the figures are about).

Every run gets an iceoryx2 configuration of its own (a /dev/shm name prefix and a root
directory made by the main process), which the main process removes afterwards: iceoryx2
keeps its node-management segment after the last node is gone.
"""

from __future__ import annotations

import ctypes
import time
from typing import Any


def unavailable() -> str | None:
    """None when iceoryx2 can be imported, else the reason it cannot."""
    try:
        import iceoryx2  # noqa: F401
    except ImportError as exc:
        return f"iceoryx2 is not installed ({exc}); pip install iceoryx2 to compare with it"
    return None


def _retry(make: Any, what: str, timeout: float = 10.0) -> Any:
    """Open-or-create can fail while the peer process is creating the same service: retry."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return make()
        except Exception as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"iceoryx2: cannot open {what}: {exc!r}") from exc
            time.sleep(0.01)


class IceoryxEndpoint:
    """One process's publisher/notifier and/or subscriber/listener."""

    def __init__(self, comparison: str, mode: str, role: str, size: int, args: dict[str, Any]) -> None:
        import iceoryx2 as iox2

        from loanbus.bench.channels import directions

        self._iox2 = iox2
        iox2.set_log_level_from_env_or(iox2.LogLevel.Error)  # no "no config file" line per process
        payload = ctypes.c_uint8 * size
        config = iox2.config.default()
        config.global_cfg.prefix = iox2.FileName.new(args["iox_prefix"])
        config.global_cfg.root_path = iox2.Path.new(args["iox_root"])
        self._node = iox2.NodeBuilder.new().config(config).create(iox2.ServiceType.Ipc)
        send, recv = directions(mode, role)
        depth = 1 if mode == "latency" else 8
        self._pub = self._notifier = self._sub = self._listener = None
        self._services: list[Any] = []

        def pubsub(name: str) -> Any:
            return _retry(
                lambda: (
                    self._node.service_builder(iox2.ServiceName.new(name))
                    .publish_subscribe(payload)
                    .max_publishers(1)
                    .max_subscribers(1)
                    .subscriber_max_buffer_size(depth)
                    .history_size(0)
                    .enable_safe_overflow(False)
                    .open_or_create()
                ),
                name,
            )

        def event(name: str) -> Any:
            return _retry(
                lambda: (
                    self._node.service_builder(iox2.ServiceName.new(name + "/ev")).event().open_or_create()
                ),
                name + "/ev",
            )

        base = args["topic"]
        if send is not None:
            service = pubsub(base + send)
            self._pub = (
                service.publisher_builder()
                .backpressure_strategy(iox2.BackpressureStrategy.RetryUntilDelivered)
                .max_loaned_samples(1)
                .create()
            )
            ev = event(base + send)
            self._notifier = ev.notifier_builder().create()
            self._services += [service, ev]
            self._out_service = service
        if recv is not None:
            service = pubsub(base + recv)
            self._sub = service.subscriber_builder().buffer_size(depth).create()
            ev = event(base + recv)
            self._listener = ev.listener_builder().create()
            self._services += [service, ev]
            self._in_service = service

    def ready(self) -> bool:
        if self._pub is not None and self._out_service.dynamic_config.number_of_subscribers < 1:
            return False
        return not (self._sub is not None and self._in_service.dynamic_config.number_of_publishers < 1)

    def send(self, tag: int) -> None:
        assert self._pub is not None and self._notifier is not None
        deadline = None
        while True:
            sample = self._pub.loan_uninit()
            ctypes.c_uint8.from_address(sample.payload_ptr).value = tag
            if sample.assume_init().send():  # the count of subscribers that got it
                break
            # 0: the subscriber is in the service's list (ready() saw it) but the publisher
            # has no connection to it yet; the sample went nowhere. Send it again rather than
            # count a loss that is only iceoryx2 connecting lazily.
            deadline = deadline or time.monotonic() + 10.0
            if time.monotonic() > deadline:
                raise RuntimeError("iceoryx2: no subscriber connected to the publisher within 10 s")
            self._pub.update_connections()
        self._notifier.notify()

    def _take(self) -> int | None:
        assert self._sub is not None
        sample = self._sub.receive()
        if sample is None:
            return None
        tag = int(ctypes.c_uint8.from_address(sample.payload_ptr).value)
        sample.delete()
        return tag

    def recv(self, timeout: float) -> int | None:
        assert self._listener is not None
        deadline = time.monotonic() + timeout
        while True:
            tag = self._take()
            if tag is not None:
                return tag
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._listener.timed_wait(self._iox2.Duration.from_secs_f64(remaining))

    def drain(self, timeout: float) -> tuple[int, int]:
        return (0, 0) if self.recv(timeout) is None else (1, 0)

    def close(self) -> None:
        for port in (self._pub, self._notifier, self._sub, self._listener):
            if port is not None:
                port.delete()
        self._services.clear()
        del self._node  # iceoryx2 removes the node's resources when the last reference goes
