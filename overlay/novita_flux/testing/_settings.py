"""What one reference server app was created with, shared by its routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response

from novita_flux.testing._faults import Faults

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Settings:
    api_key: str = field(repr=False)
    image_url_ttl: int
    clock: Callable[[], float]
    faults: Faults
    secret: bytes = field(repr=False)  # signs image links; fresh for every app
