"""The camera example: a "firmware" producer, an "SDK" consumer and an MJPEG streaming server.

Run all three with ``python -m examples.camera`` from the repository root (see README.md).
"""
