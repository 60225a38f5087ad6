"""What the three camera processes share: the ``camera::Image`` type, the topic, the QoS and
the test pattern the "firmware" paints into each frame in place."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

import loanbus
import loanbus.idl

IDL = Path(__file__).resolve().parents[2] / "idl" / "Image.idl"
_camera = loanbus.idl.load(IDL)
Image = _camera.Image
PixelFormat = _camera.PixelFormat
WIDTH, HEIGHT, CHANNELS = int(_camera.WIDTH), int(_camera.HEIGHT), int(_camera.CHANNELS)
STRIDE = WIDTH * CHANNELS
TOPIC = "camera/frames"


def qos() -> loanbus.Qos:
    """Best effort: a camera never waits for its readers; a reader that falls behind sees
    ``is_data_consistent() == False`` for a frame that was overwritten under it."""
    return loanbus.Qos(reliability=loanbus.Reliability.BEST_EFFORT, max_samples=4)


def pixels(image: Any) -> np.ndarray[Any, Any]:
    """The flat ``pixels`` buffer of an ``Image`` view as a (HEIGHT, WIDTH, 3) view, no copy."""
    if int(image.width) != WIDTH or int(image.height) != HEIGHT or int(image.strideBytes) != STRIDE:
        raise ValueError(f"unexpected geometry {image.width}x{image.height}, stride {image.strideBytes}")
    flat: np.ndarray[Any, Any] = image.pixels
    return flat.reshape((HEIGHT, WIDTH, CHANNELS))


def exit_on_sigterm() -> None:
    """Treat SIGTERM like Ctrl-C: a KeyboardInterrupt, so the process prints its summary and
    its ``with`` blocks close pools and unlink segments."""

    def _interrupt(_signum: int, _frame: Any) -> NoReturn:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)


# A 3x5 bitmap font for the frame counter, one string of 15 cells per digit.
_FONT = {
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111",
    "3": "111001111001111", "4": "101101111001001", "5": "111100111001111",
    "6": "111100111101111", "7": "111001001001001", "8": "111101111101111",
    "9": "111101111001111",
}  # fmt: skip
_GLYPHS = {d: np.array([c == "1" for c in s], dtype=bool).reshape(5, 3) for d, s in _FONT.items()}


class Painter:
    """Paints a moving gradient and the frame number into a frame, in place.

    Red runs left to right, green top to bottom, blue along the diagonal; all three move by
    a few levels per frame. Only 1-D rows and columns are computed per frame: numpy
    broadcasts them straight into the loaned memory, so no full-frame temporary is made.
    """

    SCALE = 12  # pixels per font cell

    def __init__(self) -> None:
        x = np.arange(WIDTH)
        y = np.arange(HEIGHT)
        self._red = (x * 255 // (WIDTH - 1)).astype(np.uint8)
        self._green = (y * 255 // (HEIGHT - 1)).astype(np.uint8)
        self._diagonal = ((x[None, :] + y[:, None]) // 8 % 256).astype(np.uint8)  # made once

    def paint(self, frame: np.ndarray[Any, Any], number: int) -> None:
        """Fill ``frame`` (HEIGHT x WIDTH x 3, uint8, writable) with picture ``number``."""
        shift = np.uint8(number * 3 % 256)
        np.add(self._red, shift, out=frame[:, :, 0])  # a row, broadcast over every row
        np.add(self._green[:, None], shift, out=frame[:, :, 1])  # a column, broadcast
        np.add(self._diagonal, shift, out=frame[:, :, 2])
        self._digits(frame, f"{number:08d}")

    def _digits(self, frame: np.ndarray[Any, Any], text: str) -> None:
        s = self.SCALE
        top, left = 2 * s, 2 * s
        box = frame[top - s : top + 6 * s, left - s : left + 4 * s * len(text)]
        box[...] = 0
        for i, ch in enumerate(text):
            cells = np.kron(_GLYPHS[ch], np.ones((s, s), dtype=bool))  # (5s, 3s), small
            x0 = left + 4 * s * i
            frame[top : top + 5 * s, x0 : x0 + 3 * s][cells] = 255
