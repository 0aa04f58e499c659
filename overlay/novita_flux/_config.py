"""Client configuration, checked once: key, base URL, timeout, retries, and the pieces of
connection set-up every client shares."""

from __future__ import annotations

import ipaddress
import ssl
import unicodedata
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import httpx

from novita_flux._constants import DEFAULT_TIMEOUT, LONGEST_TIMEOUT, MAX_CONNECTIONS
from novita_flux._errors import ValidationError
from novita_flux._schema import show
from novita_flux._spec import GENERATE, default_base_url, operation
from novita_flux._version import __version__

Timeout = float | httpx.Timeout | None

# What an httpx client gets when nobody chose: openai-python's rule is that an injected client
# whose timeout is still this has not chosen one, so the SDK's own default applies.
HTTPX_DEFAULT_TIMEOUT = httpx.Timeout(5.0)


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
POOL_LIMITS = httpx.Limits(
    max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS
)

DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> tuple[str, str, int | None]:
    parts = httpx.URL(url)
    return parts.scheme, parts.host, parts.port or DEFAULT_PORTS.get(parts.scheme)


def unreachable(url: httpx.URL) -> str | None:
    """Why no connection could be made to this URL's host and port, or None. Python's socket
    layer encodes a host with the `idna` codec before any lookup, and raises UnicodeError (not a
    connection error) for a label that is empty or longer than 63 characters, which a URL may
    well hold; httpx raises idna's own error for punycode that does not decode (`xn--a`) once
    the host is read; and it takes a port past 65535, which the socket layer then refuses with
    an OverflowError. A scheme other than http(s) (a URI may be `mailto:x`) is never fetched."""
    if url.scheme not in ("http", "https"):  # a URI may name any scheme; a download is HTTP
        return f"its scheme {url.scheme!r} is not http or https"
    raw = url.raw_host.decode("ascii", "replace")
    try:
        url.host  # noqa: B018 - decodes punycode, or raises
        raw.encode("idna")
    except UnicodeError as error:  # idna's errors are UnicodeErrors too
        return f"its host {raw!r} cannot be looked up ({error})"
    if url.port is not None and not 0 <= url.port <= 65535:
        return f"its port {url.port} is not in [0, 65535]"
    return None


def check_base_url(url: str, allow_insecure: bool = False) -> str:
    """The API's origin, as the client will use it. Refused: anything but an http(s) origin; a
    path (the client adds the operation's own, so `.../v3beta` would be sent to
    `/v3beta/v3beta/...`); and plain http to a host other than this machine, which would carry
    the key unencrypted, unless `allow_insecure`."""
    try:
        parts = urlsplit(url) if isinstance(url, str) else None
    except ValueError:  # e.g. a malformed IPv6 host
        parts = None
    example = default_base_url()
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(
            "base_url",
            url,
            "an http(s) URL",
            f"base_url: {show(url)} is not an http(s) URL such as {example!r}",
        )
    problem = _unusable(url)
    if problem is not None:
        raise ValidationError(
            "base_url",
            url,
            "an http(s) URL",
            f"base_url: {show(url)} is not an http(s) URL a request can go to: {problem}",
        )
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise ValidationError(
            "base_url",
            url,
            "an origin without a path",
            f"base_url: {show(url)} has a path; give only the scheme and host, like "
            f"{example!r} (the client adds {operation(GENERATE).path} itself)",
        )
    if parts.scheme == "http" and not allow_insecure and not _is_loopback(parts.hostname):
        raise ValidationError(
            "base_url",
            url,
            "https, or http to this machine",
            f"base_url: {show(url)} would send the API key unencrypted; use https, or pass "
            "allow_insecure=True (--allow-insecure) if that is what you mean",
        )
    return url.rstrip("/")


def _unusable(url: str) -> str | None:
    """Why a URL that reads as one still cannot carry a request: a port out of range, what
    httpx refuses to parse (a tab in the host, punycode that does not decode), or a host no
    lookup can take."""
    try:
        urlsplit(url).port  # ValueError when out of range  # noqa: B018
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as error:  # idna's errors are ValueErrors too
        return str(error) or type(error).__name__
    return unreachable(parsed)


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_api_key(key: object) -> str:
    """The key as it will be sent, refused (without ever echoing it) when it could not be."""
    if not isinstance(key, str):
        # Never echo what was passed: it may be the key in the wrong type.
        raise ValidationError("api_key", "****", "a string", "api_key: must be a string")
    if not key.strip(" "):
        return ""  # blank: no key at all (MissingAPIKeyError says where to get one)
    # Not stripped: a key pasted with a space around it is said to be wrong, not silently
    # mended (the space may as well be the sign of a key cut in two).
    for position, char in enumerate(key, start=1):
        if not "!" <= char <= "~":  # visible ASCII: what a header can carry unchanged
            what = "not visible ASCII"
            if char == " ":
                what = "a space"
            elif unicodedata.category(char) == "Cc":
                what = "a control character"
            raise ValidationError(
                "api_key",
                "****",
                "visible ASCII characters",
                f"api_key: character {position} of {len(key)} of the key is U+{ord(char):04X} "
                f"({what}); a key "
                "is visible ASCII with no spaces or control characters (the key is not shown)",
            )
    return key


def resolve_timeout(timeout: Any, http_client: httpx.Client | httpx.AsyncClient | None) -> Any:
    """The client's timeout when the caller passed none: an injected http_client's own, if its
    owner chose one, else the SDK default (openai-python's rule)."""
    if timeout is not NOT_GIVEN:
        return timeout
    if http_client is not None and http_client.timeout != HTTPX_DEFAULT_TIMEOUT:
        return http_client.timeout
    return DEFAULT_TIMEOUT


def check_timeout(timeout: Timeout) -> httpx.Timeout:
    """The timeout as httpx takes it. A number of seconds (or each phase of an httpx.Timeout) is
    positive; one longer than LONGEST_TIMEOUT, infinity included, means no limit, as None does:
    the socket layer cannot wait that long (past ~292 years it overflows) and nobody waits
    years for one exchange."""
    if isinstance(timeout, httpx.Timeout):
        phases = {
            phase: _seconds(timeout, getattr(timeout, phase))
            for phase in ("connect", "read", "write", "pool")
        }
        return httpx.Timeout(**phases)
    if timeout is None:
        return httpx.Timeout(None)
    return httpx.Timeout(_seconds(timeout, timeout))


def _seconds(timeout: object, seconds: object) -> float | None:
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise ValidationError(
            "timeout",
            timeout,
            "a positive number of seconds, an httpx.Timeout or None",
            f"timeout: {show(timeout)} is not a positive number of seconds, "
            "an httpx.Timeout or None",
        )
    return None if seconds > LONGEST_TIMEOUT else float(seconds)


def check_count(field: str, value: int, minimum: int, maximum: int | None = None) -> int:
    """A whole-number option of the client (not of the API: those are in the spec)."""
    too_big = maximum is not None and isinstance(value, int) and value > maximum
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or too_big:
        expected = f"an integer >= {minimum}"
        if maximum is not None:
            expected = f"an integer in [{minimum}, {maximum}]"
        raise ValidationError(field, value, expected, f"{field}: {show(value)} is not {expected}")
    return value


def check_flag(field: str, value: bool) -> bool:
    if not isinstance(value, bool):
        expected = "True or False"
        raise ValidationError(field, value, expected, f"{field}: {show(value)} is not {expected}")
    return value


def check_max_retries(max_retries: int) -> int:
    return check_count("max_retries", max_retries, 0)
