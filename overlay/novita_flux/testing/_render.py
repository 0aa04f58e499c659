"""Real, cheap, deterministic images: a gradient, a few discs, the prompt and a film grain, all
from a hash.

Everything is drawn by Pillow's C code (no per-pixel Python). The grain gives the files the
weight of real photographs (a 2048x2048 PNG is megabytes, not kilobytes), so clients are tested
against realistic downloads; even so, it renders in a fraction of a second.
"""

from __future__ import annotations

import hashlib
import io
import random
from functools import cache
from typing import Any, Final

from PIL import Image, ImageChops, ImageDraw, ImageFont

from novita_flux.testing._links import ImageLink

# How each of the spec's image types is encoded; a type added to the spec fails loudly here.
_ENCODERS: Final[dict[str, tuple[str, dict[str, Any]]]] = {
    "png": ("PNG", {"compress_level": 1}),
    "webp": ("WEBP", {"quality": 80, "method": 0}),
    "jpeg": ("JPEG", {"quality": 85}),
}

Color = tuple[int, int, int]


def render(link: ImageLink) -> bytes:
    """The encoded image a link names; the same link parameters give the same bytes."""
    pillow_format, options = _ENCODERS[link.image_type]
    seed = f"{link.prompt_hash}:{link.seed}:{link.steps}:{link.index}".encode()
    palette = hashlib.sha512(seed).digest()
    size = (link.width, link.height)
    picture = _gradient(size, _color(palette, 0), _color(palette, 3), vertical=palette[6] % 2 == 0)
    draw = ImageDraw.Draw(picture)
    short = min(size)
    for disc in range(5):
        at = 8 + disc * 8
        x, y = palette[at] * link.width // 256, palette[at + 1] * link.height // 256
        radius = (palette[at + 2] % 48 + 8) * short // 256
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=_color(palette, at + 3))
    draw.text((short // 24, short // 24), link.caption, fill=(255, 255, 255), font=_font(short))
    picture = _grainy(picture, palette)
    encoded = io.BytesIO()
    picture.save(encoded, pillow_format, **options)
    return encoded.getvalue()


def _color(palette: bytes, at: int) -> Color:
    return palette[at], palette[at + 1], palette[at + 2]


def _gradient(size: tuple[int, int], start: Color, end: Color, *, vertical: bool) -> Image.Image:
    ramp = Image.linear_gradient("L")
    if not vertical:
        ramp = ramp.transpose(Image.Transpose.ROTATE_90)
    return Image.composite(
        Image.new("RGB", size, end), Image.new("RGB", size, start), ramp.resize(size)
    )


def _grainy(picture: Image.Image, palette: bytes) -> Image.Image:
    """Add a faint, seeded grain of +-8 levels: invisible at a glance, but what makes an image
    weigh what a real one does once encoded."""
    noise = random.Random(palette).randbytes(picture.width * picture.height)
    grain = Image.frombytes("L", picture.size, noise).point(_GRAIN_LEVELS)
    return ImageChops.add(picture, Image.merge("RGB", (grain, grain, grain)), offset=-8)


_GRAIN_LEVELS: Final = [value % 17 for value in range(256)]


@cache
def _font(short_side: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=max(8, short_side // 20))
