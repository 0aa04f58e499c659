"""What one reference server app was created with, shared by its routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from novita_flux.testing._account import Account
from novita_flux.testing._envelope import error_response
from novita_flux.testing._faults import Faults
from novita_flux.testing._profiles import Profile

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Settings:
    api_key: str = field(repr=False)
    image_url_ttl: int
    clock: Callable[[], float]
    faults: Faults
    secret: bytes = field(repr=False)  # signs image links; fresh for every app
    profile: Profile
    account: Account

    def error(
        self,
        reason: str,
        message: str,
        *,
        metadata: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """The error envelope for a reason, with the status and wording of the profile."""
        return error_response(
            reason,
            message + self.profile.message_suffix,
            status=self.profile.statuses.get(reason),
            metadata=metadata,
            headers=headers,
        )
