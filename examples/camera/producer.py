"""The "firmware": writes 1920x1080 RGB ``camera::Image`` frames in place into loans.

    python -m examples.camera.producer --rate 30            # until Ctrl-C / SIGTERM
    python -m examples.camera.producer --seconds 5 --domain 7

Each frame is a moving gradient with the frame number drawn in, painted straight into the
loaned shared memory; ``write()`` then publishes only a reference. Like a sensor, it never
waits for readers: best effort, and frames nobody takes are simply overwritten.
"""

from __future__ import annotations

import argparse
import time

import loanbus
from examples.camera.frames import (
    HEIGHT,
    STRIDE,
    TOPIC,
    WIDTH,
    Image,
    Painter,
    PixelFormat,
    exit_on_sigterm,
    pixels,
    qos,
)


class Progress:
    """What the producer reports when it stops, however it stops."""

    frames = 0
    overwrites = 0


def run(progress: Progress, domain_id: int, rate: float, seconds: float, report_every: float) -> None:
    """Produce frames at ``rate`` per second for ``seconds`` (0: until stopped)."""
    painter = Painter()
    period = 1.0 / rate
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        writer = loanbus.DataWriter(loanbus.Topic(dp, TOPIC, Image), qos=qos())
        print(f"producer: writing {WIDTH}x{HEIGHT} RGB frames at {rate:g}/s to '{TOPIC}'", flush=True)
        start = last_report = time.monotonic()
        n = reported = 0
        try:
            while not seconds or time.monotonic() - start < seconds:
                if (wait := start + n * period - time.monotonic()) > 0:
                    time.sleep(wait)
                loan = writer.get_loan()
                image = Image(loan.data)
                image.width, image.height, image.strideBytes = WIDTH, HEIGHT, STRIDE
                image.pixelFormat = PixelFormat.RGB8
                image.payloadSize = STRIDE * HEIGHT
                image.sequence = n
                painter.paint(pixels(image), n)  # straight into the shared memory
                writer.write(loan)
                n = progress.frames = n + 1
                if report_every and (now := time.monotonic()) >= last_report + report_every:
                    rate_now = (n - reported) / (now - last_report)
                    print(f"producer: frame {n - 1}, {rate_now:.1f} frames/s", flush=True)
                    last_report, reported = now, n
        finally:
            progress.overwrites = writer.statistics().overwrites


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--domain", type=int, default=0, help="DDS domain id (default 0)")
    parser.add_argument("--rate", type=float, default=30.0, help="frames per second (default 30)")
    parser.add_argument("--seconds", type=float, default=0.0, help="stop after this long (0: never)")
    parser.add_argument("--report-every", type=float, default=1.0, help="seconds between status lines")
    args = parser.parse_args()
    if args.rate <= 0:
        parser.error("--rate must be positive")
    exit_on_sigterm()
    progress = Progress()
    try:
        run(progress, args.domain, args.rate, args.seconds, args.report_every)
    except KeyboardInterrupt:
        pass  # Ctrl-C or SIGTERM: leaving run() closed the writer, which unlinked its pool
    overwritten = f"{progress.overwrites} slots reused, overwriting an older frame (taken or not)"
    print(f"producer: wrote {progress.frames} frames, {overwritten}", flush=True)


if __name__ == "__main__":
    main()
