"""Client configuration, checked once: key, base URL, timeout, retries, and the pieces of
connection set-up every client shares."""

from __future__ import annotations

import ssl
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import httpx

from novita_flux._errors import ValidationError
from novita_flux._schema import show
from novita_flux._spec import default_base_url
from novita_flux._version import __version__

Timeout = float | httpx.Timeout | None


class _NotGiven:
    """The default of an option that falls back to the client's own setting."""

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Any = _NotGiven()


@cache
def ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle is most of what creating an httpx client costs (~15 ms); every
    # client this package opens shares one context instead.
    return httpx.create_ssl_context()


USER_AGENT = f"novita-flux/{__version__} httpx/{httpx.__version__}"

DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> tuple[str, str, int | None]:
    parts = httpx.URL(url)
    return parts.scheme, parts.host, parts.port or DEFAULT_PORTS.get(parts.scheme)


def check_base_url(url: str) -> str:
    try:
        parts = urlsplit(url) if isinstance(url, str) else None
    except ValueError:  # e.g. a malformed IPv6 host
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(
            "base_url",
            url,
            "an http(s) URL",
            f"base_url: {show(url)} is not an http(s) URL such as {default_base_url()!r}",
        )
    return url.rstrip("/")


def check_timeout(timeout: Timeout) -> httpx.Timeout:
    if isinstance(timeout, httpx.Timeout):
        return timeout
    if timeout is None:
        return httpx.Timeout(None)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ValidationError(
            "timeout",
            timeout,
            "a positive number of seconds, an httpx.Timeout or None",
            f"timeout: {show(timeout)} is not a positive number of seconds, "
            "an httpx.Timeout or None",
        )
    return httpx.Timeout(float(timeout))


def check_count(field: str, value: int, minimum: int) -> int:
    """A whole-number option of the client (not of the API: those are in the spec)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        expected = f"an integer >= {minimum}"
        raise ValidationError(field, value, expected, f"{field}: {show(value)} is not {expected}")
    return value


def check_max_retries(max_retries: int) -> int:
    return check_count("max_retries", max_retries, 0)
