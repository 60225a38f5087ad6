"""Image-like types and the Foxglove image messages made from their frames."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import foxglove.messages as fm
import numpy as np
import pytest

import loanbus
import loanbus.idl
from loanbus.recording.images import compressed_image, encoding_of_enumerator, image_fields, raw_image

ROOT = Path(__file__).resolve().parents[2]
camera = loanbus.idl.load(ROOT / "idl" / "Image.idl")


def _small_camera_frame() -> Any:
    image = camera.Image.zeros()
    image.width, image.height, image.strideBytes = 4, 2, 13  # one byte of row padding
    image.pixelFormat = camera.PixelFormat.RGB8
    image.payloadSize = 26
    image.pixels[:26] = np.arange(26)
    return image


def test_the_camera_image_type_is_image_like() -> None:
    fields = image_fields(camera.Image)
    assert fields is not None
    assert (fields.width, fields.height, fields.step, fields.encoding, fields.pixels, fields.size) == (
        "width",
        "height",
        "strideBytes",
        "pixelFormat",
        "pixels",
        "payloadSize",
    )
    assert dict(fields.enum_encodings or ()) == {0: "rgb8", 1: "bgr8", 2: "rgba8", 3: "mono8", 4: "yuyv"}


def test_a_raw_image_message_is_byte_for_byte_what_foxgloves_encoder_writes() -> None:
    fields = image_fields(camera.Image)
    assert fields is not None
    frame = fields.frame(_small_camera_frame().array)
    assert frame is not None and frame.step == 13 and frame.encoding == "rgb8"
    ours = raw_image(frame, 1_700_000_000_123_456_789, "cam")
    theirs = fm.RawImage(
        timestamp=fm.Timestamp(1_700_000_000, 123_456_789),
        frame_id="cam",
        width=4,
        height=2,
        encoding="rgb8",
        step=13,
        data=bytes(range(26)),
    ).encode()
    assert ours == theirs


def test_a_compressed_image_message_is_byte_for_byte_what_foxgloves_encoder_writes() -> None:
    ours = compressed_image(b"\xff\xd8jpeg", "jpeg", 5_000_000_001)
    theirs = fm.CompressedImage(timestamp=fm.Timestamp(5, 1), data=b"\xff\xd8jpeg", format="jpeg").encode()
    assert ours == theirs


def test_a_frame_whose_header_overruns_its_buffer_is_no_frame() -> None:
    fields = image_fields(camera.Image)
    assert fields is not None
    image = _small_camera_frame()
    image.payloadSize = 25  # one byte short of height * step
    assert fields.frame(image.array) is None
    image.payloadSize, image.width = 26, 5  # a row wider than its stride
    assert fields.frame(image.array) is None


def test_a_type_with_a_string_encoding_is_image_like(tmp_path: Path) -> None:
    idl = tmp_path / "img.idl"
    idl.write_text(
        "@transfer_mode(SHMEM_REF) struct Img { unsigned long width; unsigned long height;"
        " string<15> encoding; octet data[64]; };"
    )
    cls = loanbus.idl.load(idl).Img
    fields = image_fields(cls)
    assert fields is not None and fields.enum_encodings is None and fields.step is None
    img = cls.zeros()
    img.width, img.height, img.encoding = 4, 4, "mono8"
    frame = fields.frame(img.array)
    assert frame is not None and frame.encoding == "mono8" and frame.step == 4 and frame.pixels.size == 16


@pytest.mark.parametrize(
    "dtype",
    [
        np.dtype([("seq", "<u8"), ("pixels", "u1", (8, 8, 3))]),  # no width, height or encoding
        np.dtype(
            [("width", "<u4"), ("height", "<u4"), ("format", "<u4"), ("pixels", "u1", (64,))]
        ),  # no enum
    ],
)
def test_a_type_that_does_not_say_how_its_pixels_are_laid_out_is_not_image_like(dtype: np.dtype[Any]) -> None:
    assert image_fields(loanbus.ShmemType("x::NotAnImage", dtype)) is None


def test_enumerators_map_to_foxglove_encodings() -> None:
    assert encoding_of_enumerator("RGB8") == "rgb8"
    assert encoding_of_enumerator("GRAY8") == "mono8"
    assert encoding_of_enumerator("YUYV") == "yuyv"
    assert encoding_of_enumerator("JPEG") is None


def test_a_frame_compresses_to_a_jpeg_of_its_size_without_its_row_padding() -> None:
    import simplejpeg

    from loanbus.recording.images import frame_array

    image = camera.Image.zeros()
    image.width, image.height, image.strideBytes = 16, 8, 16 * 3 + 5
    image.pixelFormat = camera.PixelFormat.RGB8
    image.payloadSize = 8 * (16 * 3 + 5)
    fields = image_fields(camera.Image)
    assert fields is not None
    frame = fields.frame(image.array)
    assert frame is not None
    pixels = frame_array(frame)
    assert pixels is not None and pixels.shape == (8, 16, 3)
    jpeg = simplejpeg.encode_jpeg(pixels, quality=85, colorspace="RGB")
    assert simplejpeg.decode_jpeg(jpeg).shape == (8, 16, 3)
