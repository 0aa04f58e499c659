"""What the bytes of a PNG, JPEG or WebP say about themselves: which type they are, whether the
file is whole, and its width and height. Read from headers and trailers only, so no image library
is needed on the client, and a streamed download can be judged from its first and last bytes.
"""

from __future__ import annotations

import struct
from typing import Final

HEAD_BYTES: Final = 32  # enough for every signature, the WebP RIFF size and PNG/WebP sizes
# The tail keeps PNG's IEND chunk, or JPEG's end marker and the zero padding some encoders add.
TAIL_BYTES: Final = 1024

_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
_PNG_END: Final = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the empty IEND chunk and its CRC
_JPEG_END: Final = b"\xff\xd9"
# JPEG markers that start a frame and so carry the image's size (SOF0-15 but DHT, JPG, DAC).
_JPEG_FRAMES: Final = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def sniff(head: bytes) -> str | None:
    """The image type the first bytes announce (png, jpeg or webp), if any."""
    if head.startswith(_PNG_SIGNATURE):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def incomplete(kind: str, head: bytes, tail: bytes, size: int) -> str | None:
    """Why a file of this type is not whole, or None when it ends where its format says.

    `head` and `tail` are its first HEAD_BYTES and last TAIL_BYTES (fewer for a tiny file)."""
    if kind == "png" and not tail.endswith(_PNG_END):
        return "it does not end with PNG's IEND chunk"
    if kind == "jpeg" and not tail.rstrip(b"\x00").endswith(_JPEG_END):
        return "it does not end with JPEG's end-of-image marker"
    if kind == "webp":
        if len(head) < 8:
            return "it ends inside the RIFF header"
        (riff_size,) = struct.unpack_from("<I", head, 4)
        if size < riff_size + 8:
            return f"the RIFF header promises {riff_size + 8} bytes but only {size} arrived"
    return None


def dimensions(data: bytes) -> tuple[int, int] | None:
    """(width, height) read from the file's header, or None when it cannot be read."""
    try:
        kind = sniff(data[:HEAD_BYTES])
        if kind == "png" and data[12:16] == b"IHDR":
            width, height = struct.unpack_from(">II", data, 16)
            return width, height
        if kind == "webp":
            return _webp_dimensions(data)
        if kind == "jpeg":
            return _jpeg_dimensions(data)
    except struct.error:  # cut short inside a header
        return None
    return None


def _webp_dimensions(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":  # lossy: the key frame's start code
        width, height = struct.unpack_from("<HH", data, 26)
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and data[20] == 0x2F:  # lossless: 14-bit sizes minus one, packed
        (bits,) = struct.unpack_from("<I", data, 21)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":  # extended: the canvas size, 24-bit, minus one
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    return None


def _jpeg_dimensions(data: bytes) -> tuple[int, int] | None:
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            at += 2
            continue
        (length,) = struct.unpack_from(">H", data, at + 2)
        if marker in _JPEG_FRAMES:
            height, width = struct.unpack_from(">HH", data, at + 5)
            return width, height
        at += 2 + length
    return None
