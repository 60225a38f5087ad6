"""Generated types travel through loans between two processes, bounded sequences included."""

from __future__ import annotations

import time
from types import ModuleType
from typing import Any

import numpy as np

import loanbus
import loanbus.idl
from tests.helpers import CTX, join_ok, start

from .ctools import REPO

POINT_CLOUD = REPO / "idl" / "PointCloud.idl"
RELIABLE = loanbus.Qos(reliability=loanbus.Reliability.RELIABLE, max_samples=2, max_blocking_time=10.0)
# Point counts of the samples: empty, one, the bound, and some in between.
COUNTS = [0, 1, 100000, 12345, 7, 99999]


def _fill(pc: ModuleType, cloud: Any, i: int) -> None:
    cloud.sensor_id = 100 + i
    cloud.header.seq = i
    cloud.header.stamp.sec = -i
    cloud.header.frame_id = f"frame {i} ✓"
    cloud.sensor_to_world[...] = np.eye(4) * (i + 1)
    cloud.intrinsics[...] = np.arange(9, dtype=np.float32).reshape(3, 3) + i
    points = cloud.resize("points", COUNTS[i])
    points["x"] = np.arange(COUNTS[i], dtype=np.float32) + i
    points["intensity"] = 0.5
    points["kind"] = list(pc.PointKind)[i % 4]


def _check(pc: ModuleType, cloud: Any, i: int) -> None:
    assert cloud.sensor_id == 100 + i
    assert (cloud.header.seq, cloud.header.stamp.sec) == (i, -i)
    assert cloud.header.frame_id == f"frame {i} ✓"
    assert np.array_equal(cloud.sensor_to_world, np.eye(4) * (i + 1))
    assert cloud.intrinsics[2, 2] == 8 + i
    points = cloud.points  # only the valid part of the bounded sequence
    assert points.shape == (COUNTS[i],)
    assert np.array_equal(points["x"], np.arange(COUNTS[i], dtype=np.float32) + i)
    assert np.all(points["intensity"] == 0.5)
    assert np.all(points["kind"] == list(pc.PointKind)[i % 4])


def _writer(domain_id: int, ready: Any, done: Any) -> None:
    pc = loanbus.idl.load(POINT_CLOUD)  # compiled again in this process: same type hash
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        writer = loanbus.DataWriter(loanbus.Topic(dp, "clouds", pc.PointCloud), qos=RELIABLE)
        assert writer.wait_for_readers(1, timeout=30)
        ready.wait(30)
        for i in range(len(COUNTS)):
            loan = writer.get_loan()
            _fill(pc, pc.PointCloud(loan.data), i)
            writer.write(loan)
        done.wait(60)  # keep the pool until the reader has checked everything


def test_generated_types_round_trip_through_loans_between_processes(domain_id: int) -> None:
    pc = loanbus.idl.load(POINT_CLOUD)
    ready, done = CTX.Event(), CTX.Event()
    proc = start(_writer, domain_id, ready, done)
    try:
        with loanbus.DomainParticipant(domain_id=domain_id) as dp:
            topic = loanbus.Topic(dp, "clouds", pc.PointCloud)
            reader = loanbus.DataReader(topic, qos=RELIABLE)
            assert reader.wait_for_writers(1, timeout=30)
            ready.set()
            checked = 0
            deadline = time.monotonic() + 60
            while checked < len(COUNTS) and time.monotonic() < deadline:
                for sample in reader.take(max_samples=4, timeout=1.0):
                    assert not sample.data.flags.writeable  # a view of the writer's pool
                    _check(pc, pc.PointCloud(sample.data), checked)
                    assert reader.is_data_consistent(sample)
                    reader.return_loan(sample)
                    checked += 1
            assert checked == len(COUNTS)
            reader.close()
    finally:
        done.set()
        join_ok(proc)
