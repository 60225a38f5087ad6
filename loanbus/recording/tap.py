"""One topic tapped: a DataReader whose samples are copied out into a sink's channels.

Each sample is taken zero-copy, copied once into its CDR message (and, for an image-like
type, once more into a Foxglove image message), then checked with ``is_data_consistent``:
a sample the writer overwrote meanwhile is counted as inconsistent and not logged. A
sequence number a writer skipped (a reference that never arrived, or arrived too late to
be mapped) is counted as dropped, and so is a sample a best-effort tap had no room for
because the sink is behind (see ``outbox.py``).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import loanbus
from loanbus.recording.codec import MESSAGE_ENCODING, SCHEMA_ENCODING, RecordCodec
from loanbus.recording.images import (
    JPEG_COLORSPACES,
    ImageFields,
    compressed_image,
    frame_array,
    image_fields,
    raw_image_parts,
)
from loanbus.recording.outbox import Outbox
from loanbus.recording.sink import Channel, Sink
from loanbus.recording.typedesc import TYPE_KEY, TYPE_NAME_KEY

log = logging.getLogger("loanbus.recording")

#: What image-like topics also get: a ``foxglove.RawImage`` channel, a JPEG
#: ``foxglove.CompressedImage`` channel, or nothing.
IMAGE_MODES = ("raw", "jpeg", "none")
#: The suffix of the image channel of an image-like topic.
IMAGE_SUFFIX = "/image"


@dataclass(frozen=True)
class TopicStatus:
    """What a tap did so far."""

    topic: str
    type_name: str
    samples: int  # messages logged on the topic's CDR channel
    bytes: int  # bytes of those messages
    dropped: int  # never received (sequence numbers skipped), or no room while the sink was behind
    inconsistent: int  # overwritten while being copied out: not logged
    images: int  # messages logged on the image channel
    last_seq: int  # the highest sequence number taken (0: none yet)
    writers: tuple[tuple[int, int], ...] = ()  # (first, last) sequence number per writer


def _jpeg(frame_pixels: Any, colorspace: str) -> bytes:
    import simplejpeg

    data: bytes = simplejpeg.encode_jpeg(frame_pixels, quality=85, colorspace=colorspace)
    return data


def reader_qos(reliable: bool) -> loanbus.Qos:
    """A recorder's reader: every reference queued (no history limit); reliable holds slots."""
    if reliable:
        return loanbus.Qos(reliability=loanbus.Reliability.RELIABLE, history_depth=None, max_samples=4)
    return loanbus.Qos(reliability=loanbus.Reliability.BEST_EFFORT, history_depth=None, max_samples=4)


class Tap:
    """Takes ``topic`` in ``participant``; each consistent sample goes through ``outbox`` into
    the topic's channels of ``sink``."""

    def __init__(
        self,
        participant: loanbus.DomainParticipant,
        topic: str,
        data_type: object,
        sink: Sink,
        outbox: Outbox,
        *,
        images: str = "raw",
        reliable: bool = False,
    ) -> None:
        if images not in IMAGE_MODES:
            raise ValueError(f"images must be one of {', '.join(IMAGE_MODES)}, not {images!r}")
        self.topic = topic
        self._outbox = outbox
        self.codec = codec = RecordCodec(data_type)
        self.type_name = codec.schema_name
        self._samples = self._bytes = self._dropped = self._inconsistent = self._images = 0
        self._last_seq = 0
        self._seqs: dict[int, list[int]] = {}  # publication handle -> [first, last]
        self.channel = Channel(
            sink,
            topic,
            schema_name=codec.schema_name,
            schema_encoding=SCHEMA_ENCODING,
            schema_data=codec.schema_text.encode(),
            message_encoding=MESSAGE_ENCODING,
            metadata={TYPE_KEY: codec.description, TYPE_NAME_KEY: codec.schema_name},
        )
        self.image_channel: Channel | None = None
        self._fields: ImageFields | None = None
        self._images_mode = images
        self._reliable = reliable
        self._need = codec.itemsize * (2 if image_fields(data_type) is not None and images == "raw" else 1)
        fields = image_fields(data_type) if images != "none" else None
        if fields is not None:
            schema = sink.fox.messages.RawImage.get_schema()
            if images == "jpeg":
                schema = sink.fox.messages.CompressedImage.get_schema()
            self._fields = fields
            self.image_channel = Channel(
                sink,
                topic + IMAGE_SUFFIX,
                schema_name=schema.name,
                schema_encoding=schema.encoding,
                schema_data=bytes(schema.data),
                message_encoding=schema.encoding,
            )
        self._topic = loanbus.Topic(participant, topic, data_type)
        self.reader: loanbus.DataReader[Any] = loanbus.DataReader(self._topic, qos=reader_qos(reliable))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"loanbus tap {topic}", daemon=True)
        self._thread.start()

    # -- the sample path ---------------------------------------------------------------

    def _run(self) -> None:
        reader = self.reader
        try:
            while not self._stop.is_set():
                for sample in reader.take(max_samples=16, timeout=0.2):
                    self._one(sample)
        except loanbus.ClosedError:
            pass
        except Exception:  # a tap must not die silently: say why, the others go on
            log.exception("recording topic %r stopped", self.topic)

    def _count(self, handle: int, seq: int) -> None:
        if seq <= 0:  # a by-value sample: no writer sequence number
            return
        seen = self._seqs.get(handle)
        if seen is None:
            self._seqs[handle] = [seq, seq]
        else:
            if seq > seen[1] + 1:
                self._dropped += seq - seen[1] - 1
            seen[1] = max(seen[1], seq)
        self._last_seq = max(self._last_seq, seq)

    def _image(self, data: Any, timestamp_ns: int) -> bytes | None:
        assert self._fields is not None
        frame = self._fields.frame(data)
        if frame is None:
            return None
        if self._images_mode == "jpeg":
            pixels = frame_array(frame)
            if pixels is not None:
                return compressed_image(_jpeg(pixels, JPEG_COLORSPACES[frame.encoding]), "jpeg", timestamp_ns)
        head, tail = raw_image_parts(frame, timestamp_ns)
        return b"".join((head, frame.pixels.data, tail))

    def _one(self, sample: loanbus.LoanedSample) -> None:
        reader = self.reader
        info = sample.info
        self._count(info.publication_handle, info.sequence_number)
        image_channel = self.image_channel
        want = self.channel.wanted()
        want_image = image_channel is not None and image_channel.wanted()
        message = image = None
        if not self._reliable and (want or want_image) and not self._outbox.room(self._need):
            reader.return_loan(sample)  # behind: keep taking, count it, copy nothing
            self._dropped += 1
            return
        try:
            if want or want_image:
                data = sample.data
                message = self.codec.encode(data) if want else None
                image = self._image(data, info.source_timestamp) if want_image else None
            consistent = reader.is_data_consistent(sample)
        finally:
            reader.return_loan(sample)
        if not consistent:
            self._inconsistent += 1
            return
        ts = info.source_timestamp
        if message is not None:
            self._outbox.put(self.channel, message, ts)
            self._samples += 1
            self._bytes += len(message)
        if image is not None and image_channel is not None:
            self._outbox.put(image_channel, image, ts)
            self._images += 1

    # -- status and end ----------------------------------------------------------------

    def status(self) -> TopicStatus:
        return TopicStatus(
            topic=self.topic,
            type_name=self.type_name,
            samples=self._samples,
            bytes=self._bytes,
            dropped=self._dropped,
            inconsistent=self._inconsistent,
            images=self._images,
            last_seq=self._last_seq,
            writers=tuple((first, last) for first, last in self._seqs.values()),
        )

    def stop(self) -> None:
        """Stop the thread (it finishes the sample in hand) and close the reader; what it queued
        in the outbox still goes to the channels."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
        self.reader.close()

    def close(self) -> None:
        """``stop()``, then close the channels (after the outbox was drained)."""
        self.stop()
        self.channel.close()
        if self.image_channel is not None:
            self.image_channel.close()


__all__ = ["IMAGE_MODES", "IMAGE_SUFFIX", "Tap", "TopicStatus", "reader_qos"]
