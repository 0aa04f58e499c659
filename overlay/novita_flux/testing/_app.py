"""create_app: the reference server as an ASGI app, serving every operation of the spec.

Each operation is routed at the method and path the spec gives it, to the handler named by its
operationId in HANDLERS; a spec with an operation no handler serves fails here, when the app is
made, not when a client first calls it."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from novita_flux._schema import SchemaViolation, compile_schema, conform
from novita_flux._spec import BALANCE, GENERATE, document, operations
from novita_flux.testing._account import Account, Amount
from novita_flux.testing._api import api_endpoint
from novita_flux.testing._balance import balance_endpoint
from novita_flux.testing._envelope import error_response
from novita_flux.testing._faults import Faults
from novita_flux.testing._images import image_endpoint
from novita_flux.testing._links import IMAGE_ROUTE
from novita_flux.testing._profiles import ProfileName, profile_named
from novita_flux.testing._settings import Endpoint, Settings

logger = logging.getLogger("novita_flux.testing")

# What serves each operation of the spec, by operationId.
HANDLERS: dict[str, Callable[[Settings], Endpoint]] = {
    GENERATE: api_endpoint,
    BALANCE: balance_endpoint,
}


def create_app(
    *,
    api_key: str = "test-key",
    image_url_ttl: int = 3600,
    images_per_minute: int | None = None,
    latency: float = 0.0,
    image_base_url: str | None = None,
    clock: Callable[[], float] = time.time,
    profile: ProfileName = "documented",
    balance: Amount | None = None,
) -> Starlette:
    """An offline stand-in for the API, serving the spec's operation and the images it links.

    api_key: the one key accepted. image_url_ttl: seconds an image link stays valid; 0 issues
    links that never expire (the API then states no expiry). profile: `documented` answers as
    Novita's docs page draws it, `observed` as the API family has been seen to answer (TTLs as
    strings, extra fields, no Retry-After, images as application/octet-stream; see _profiles).
    images_per_minute, latency: the initial `app.state.faults` settings. image_base_url: the
    origin image links point at (`app.state.image_base_url`, settable later); by default the
    origin each API request was sent to. clock: unix seconds, for link expiry and the rate
    window; a test may pass a fake one to move time. balance: what the account may spend, in
    USD (None: unlimited); each billed task takes its exact price from it, and a task it cannot
    pay for is refused BILLING_BALANCE_NOT_ENOUGH (`app.state.account`; see _account).
    """
    if not isinstance(api_key, str) or not api_key:
        raise ValueError("api_key must be a non-empty string")
    try:
        ttl = conform(_ttl_schema(), image_url_ttl, ("image_url_ttl",))
    except SchemaViolation as violation:
        raise ValueError(str(violation)) from None
    try:
        account = Account(balance)
    except ValueError as error:
        raise ValueError(str(error)) from None
    chosen = profile_named(profile)
    faults = Faults(latency=latency, images_per_minute=images_per_minute, profile=chosen)
    settings = Settings(api_key, ttl, clock, faults, secrets.token_bytes(32), chosen, account)
    unserved = operations().keys() - HANDLERS.keys()
    if unserved:
        raise RuntimeError(f"the reference server serves no handler for {', '.join(unserved)}")
    app = Starlette(
        routes=[
            *(
                Route(op.path, HANDLERS[op.id](settings), methods=[op.method])
                for op in operations().values()
            ),
            Route(IMAGE_ROUTE, image_endpoint(settings), methods=["GET"]),
        ],
        middleware=[Middleware(_QuietDisconnects)],
        exception_handlers={404: _not_found, 405: _method_not_allowed},
    )
    app.router.redirect_slashes = False  # the real API answers 404, not a redirect
    app.state.faults = faults
    app.state.account = account
    app.state.image_base_url = image_base_url
    return app


def _ttl_schema() -> dict[str, object]:
    """The spec's TTL as a number: the server is configured with seconds, and the profile says
    how to spell them."""
    image = document()["components"]["schemas"]["Image"]
    branches = compile_schema(image)["properties"]["image_url_ttl"]["oneOf"]
    ttl: dict[str, object] = next(b for b in branches if b["type"] == "integer")
    return ttl


class _QuietDisconnects:
    """A client that hangs up mid-request (a timeout, Ctrl-C) is ordinary for a test server:
    one line in the log, not a traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except ClientDisconnect:
            logger.warning(
                "client disconnected before the answer to %s %s",
                scope.get("method", "?"),
                scope.get("path", "?"),
            )


async def _not_found(request: Request, exc: Exception) -> Response:
    return error_response("API_NOT_FOUND", f"api not found: {request.method} {request.url.path}")


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    # Not a reason the spec lists: HTTP itself asks for 405 and an Allow header here.
    allow = (exc.headers or {}).get("Allow", "") if isinstance(exc, HTTPException) else ""
    return error_response(
        "METHOD_NOT_ALLOWED",
        f"method {request.method} is not allowed here; allowed: {allow}",
        status=405,
        headers={"Allow": allow},
    )
