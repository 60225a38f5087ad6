"""Messages of a recording: the by-value CDR encoding, decoded through the type the file carries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import loanbus
import loanbus.idl
from loanbus._transport import value_type
from loanbus.recording.codec import RecordCodec, sample_bytes
from loanbus.recording.player import channel_codec
from loanbus.recording.typedesc import TYPE_KEY

ROOT = Path(__file__).resolve().parents[2]
camera = loanbus.idl.load(ROOT / "idl" / "Image.idl")
sensors = loanbus.idl.load(ROOT / "idl" / "PointCloud.idl")
PLAIN = loanbus.ShmemType("demo::Plain", np.dtype([("seq", "<u8"), ("v", "<f4", (3,)), ("tail", "u1")]))
SHAPED = loanbus.ShmemType("demo::Shaped", np.dtype("<u2"), shape=(6, 4))


def _random_sample(stype: loanbus.ShmemType, seed: int) -> np.ndarray[Any, Any]:
    sample = np.zeros(stype.shape or (), stype.dtype)
    raw = sample_bytes(sample)
    raw[:] = np.random.default_rng(seed).integers(0, 256, raw.size, dtype=np.uint8)
    return sample


def _point_cloud(n: int) -> np.ndarray[Any, Any]:
    cloud = sensors.PointCloud.zeros()
    cloud.sensor_id = 7
    cloud.header.frame_id = "lidar"
    cloud.header.seq = 42
    points = cloud.resize("points", n)
    points["x"] = np.arange(n)
    points["kind"] = 2
    return cloud.array


@pytest.mark.parametrize("data_type", [camera.Image, PLAIN, SHAPED], ids=["image", "plain", "shaped"])
def test_a_flat_message_is_the_by_value_encoding_made_with_one_copy(data_type: Any) -> None:
    codec = RecordCodec(data_type)
    assert codec.flat
    sample = _random_sample(codec.shmem_type, 1)
    message = codec.encode(sample)
    assert message == bytes(codec.value_type.encode(sample, sample_bytes(sample).data))
    out = np.zeros(codec.shmem_type.shape or (), codec.shmem_type.dtype)
    codec.decode_into(message, out)
    assert sample_bytes(out).tobytes() == sample_bytes(sample).tobytes()  # no padding in these types


def test_a_point_cloud_message_is_walked_and_carries_only_the_valid_points() -> None:
    codec = RecordCodec(sensors.PointCloud)
    assert not codec.flat
    cloud = _point_cloud(3)
    message = codec.encode(cloud)
    assert len(message) < 400  # 3 points, not room for 100,000
    vt = value_type(sensors.PointCloud.type_name, sensors.PointCloud.dtype, sensors.PointCloud.ByValue)
    assert message == bytes(vt.encode(cloud, sample_bytes(cloud).data))


def test_a_recorded_point_cloud_decodes_through_the_type_rebuilt_from_the_file_alone() -> None:
    recorded = RecordCodec(sensors.PointCloud)
    message = recorded.encode(_point_cloud(5))
    # what play has: the channel's metadata and schema, no IDL file and no generated class
    codec = channel_codec("points", {TYPE_KEY: recorded.description}, recorded.schema_text.encode())
    assert codec.shmem_type == sensors.PointCloud.__shmem_type__
    out = np.zeros((), codec.shmem_type.dtype)
    codec.decode_into(message, out)
    cloud = sensors.PointCloud(out)
    assert (cloud.sensor_id, cloud.header.frame_id, cloud.header.seq) == (7, "lidar", 42)
    assert cloud.points["x"].tolist() == [0, 1, 2, 3, 4]
    assert cloud.points["kind"].tolist() == [2] * 5


def test_a_recorded_plain_type_decodes_through_its_description() -> None:
    recorded = RecordCodec(PLAIN)
    sample = _random_sample(PLAIN, 3)
    codec = channel_codec("plain", {TYPE_KEY: recorded.description}, recorded.schema_text.encode())
    out = np.zeros((), PLAIN.dtype)
    codec.decode_into(recorded.encode(sample), out)
    assert sample_bytes(out).tobytes() == sample_bytes(sample).tobytes()
