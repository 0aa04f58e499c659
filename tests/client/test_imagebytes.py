"""Reading PNG, JPEG and WebP from their bytes alone: type, wholeness and size, judged against
Pillow's own encoders (the client itself never needs Pillow)."""

from __future__ import annotations

import io
import random

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from PIL import Image

from novita_flux._imagebytes import HEAD_BYTES, TAIL_BYTES, dimensions, incomplete, sniff

# (Pillow format, save options, mode): lossy and lossless WebP and WebP with alpha (VP8, VP8L,
# VP8X), baseline and progressive JPEG, PNG with and without alpha.
ENCODINGS = {
    "png": [("PNG", {}, "RGB"), ("PNG", {}, "RGBA")],
    "jpeg": [("JPEG", {}, "RGB"), ("JPEG", {"progressive": True}, "RGB"), ("JPEG", {}, "L")],
    "webp": [
        ("WEBP", {"lossless": False}, "RGB"),
        ("WEBP", {"lossless": True}, "RGB"),
        ("WEBP", {"lossless": False}, "RGBA"),
    ],
}


def encode(image_type: str, variant: int, width: int, height: int) -> bytes:
    pillow_format, options, mode = ENCODINGS[image_type][variant]
    buffer = io.BytesIO()
    noise = random.Random(f"{width}x{height}").randbytes(width * height)  # the same every run
    picture = Image.frombytes("L", (width, height), noise).convert(mode)
    picture.save(buffer, pillow_format, **options)
    return buffer.getvalue()


def judged(image_type: str, data: bytes) -> str | None:
    """What `incomplete` says of data, given only what a stream keeps: its ends and its size."""
    return incomplete(image_type, data[:HEAD_BYTES], data[-TAIL_BYTES:], len(data))


encodings = st.sampled_from(
    [(kind, variant) for kind, variants in ENCODINGS.items() for variant in range(len(variants))]
)
sides = st.integers(1, 300)


@given(encoding=encodings, width=sides, height=sides)
@example(encoding=("webp", 1), width=16383, height=1)  # the largest lossless side
@example(encoding=("jpeg", 0), width=2048, height=64)
def test_type_size_and_wholeness_are_read_from_the_bytes(
    encoding: tuple[str, int], width: int, height: int
) -> None:
    image_type, variant = encoding
    data = encode(image_type, variant, width, height)
    assert sniff(data[:HEAD_BYTES]) == image_type
    assert dimensions(data) == (width, height)
    assert judged(image_type, data) is None


@given(encoding=encodings, width=sides, height=sides, data=st.data())
def test_any_image_cut_short_is_found_incomplete(
    encoding: tuple[str, int], width: int, height: int, data: st.DataObject
) -> None:
    image_type, variant = encoding
    whole = encode(image_type, variant, width, height)
    cut = data.draw(st.integers(1, len(whole) - 1), label="bytes kept")
    assert judged(image_type, whole[:cut]) is not None


@pytest.mark.parametrize(
    "head",
    [b"", b"GIF89a" + b"\x00" * 10, b"<html>", b"RIFF\x00\x00\x00\x00WAVE", b"\x89PNG\r\n"],
)
def test_anything_else_is_no_known_type_and_has_no_size(head: bytes) -> None:
    assert sniff(head) is None
    assert dimensions(head) is None


def test_a_header_cut_short_has_no_size_rather_than_an_error() -> None:
    for image_type in ENCODINGS:
        data = encode(image_type, 0, 40, 30)
        assert all(dimensions(data[:cut]) in (None, (40, 30)) for cut in range(len(data)))


def test_padding_after_a_jpeg_end_marker_is_still_whole() -> None:
    data = encode("jpeg", 0, 8, 8)
    assert judged("jpeg", data + b"\x00\x00") is None
    # Encoders that pad to a block size add up to hundreds of zero bytes, not two.
    assert judged("jpeg", data + b"\x00" * 512) is None
    assert judged("jpeg", data[:-1]) == "it does not end with JPEG's end-of-image marker"


def test_a_webp_shorter_than_its_riff_header_promises_says_by_how_much() -> None:
    data = encode("webp", 0, 8, 8)
    problem = judged("webp", data[:-4])
    assert problem == f"the RIFF header promises {len(data)} bytes but only {len(data) - 4} arrived"
    assert judged("webp", data[:7]) == "it ends inside the RIFF header"
