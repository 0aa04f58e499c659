"""The novita-flux pytest plugin: test your code against the reference server with fixtures.

Registered through the `pytest11` entry point, so it is there whenever novita-flux is installed.
It costs nothing when unused: this module imports only pytest, and neither the client nor the
server is imported until a test asks for a fixture. Without the `testing` extra, pytest runs as
ever and only a test that asks for a fixture fails, saying what to install.

Fixtures:
    novita_server      a ReferenceServer shared by the session (one per profile and link TTL),
                       its faults and counters reset before each test
    flux_client        a FluxSchnell bound to it
    async_flux_client  an AsyncFluxSchnell bound to it

Marker, to configure the server for one test:
    @pytest.mark.novita(profile="observed", images_per_minute=10, latency=0.2, image_url_ttl=60)
    @pytest.mark.novita(balance="0.01")  # the account holds $0.01 (default: unlimited)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from novita_flux import AsyncFluxSchnell, FluxSchnell
    from novita_flux.testing import ReferenceServer

MARKER = "novita"
HINT = "pip install 'novita-flux[testing]'"
_OPTIONS = ("profile", "images_per_minute", "latency", "image_url_ttl", "balance")
_AT_START = ("profile", "image_url_ttl")  # fixed when a server starts: one server each


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(profile='documented', images_per_minute=None, latency=0.0, "
        "image_url_ttl=3600, balance=None): configure the novita-flux reference server for "
        "this test (balance: what its account may spend, in USD; None: unlimited)",
    )


class _Servers:
    """The session's reference servers, started on first use, one per (profile, TTL)."""

    def __init__(self) -> None:
        self._running: dict[tuple[Any, ...], ReferenceServer] = {}

    def get(self, profile: str, image_url_ttl: int) -> ReferenceServer:
        key = (profile, image_url_ttl)
        if key not in self._running:
            testing = _testing()
            server = testing.ReferenceServer(profile=profile, image_url_ttl=image_url_ttl)
            self._running[key] = server.start()
        return self._running[key]

    def stop(self) -> None:
        for server in self._running.values():
            server.stop()
        self._running.clear()


def _testing() -> Any:
    try:
        import novita_flux.testing as testing
    except ImportError as error:
        missing = str(error)
    else:
        return testing
    # Outside the except clause: the hint alone, not a chain of tracebacks.
    pytest.fail(f"the novita-flux fixtures need the testing extra: {HINT} ({missing})", False)


@pytest.fixture(scope="session")
def _novita_servers() -> Iterator[_Servers]:
    servers = _Servers()
    yield servers
    servers.stop()


@pytest.fixture
def novita_server(
    request: pytest.FixtureRequest, _novita_servers: _Servers
) -> Iterator[ReferenceServer]:
    """The reference server, as the test's `novita` marker (if any) configures it."""
    options = _marker_options(request)
    server = _novita_servers.get(
        options.get("profile", "documented"), options.get("image_url_ttl", 3600)
    )
    server.faults.reset()  # what one test did never leaks into the next
    server.account.reset()
    for name in ("images_per_minute", "latency"):
        if name in options:
            setattr(server.faults, name, options[name])
    if "balance" in options:
        try:
            server.account.balance = options["balance"]
        except ValueError as error:
            pytest.fail(f"@pytest.mark.{MARKER}: {error}", False)
    yield server
    server.faults.reset()
    server.account.reset()


@pytest.fixture
def flux_client(novita_server: ReferenceServer) -> Iterator[FluxSchnell]:
    from novita_flux import FluxSchnell

    with FluxSchnell(api_key=novita_server.api_key, base_url=novita_server.url) as client:
        yield client


@pytest.fixture
def async_flux_client(novita_server: ReferenceServer) -> Iterator[AsyncFluxSchnell]:
    """An AsyncFluxSchnell for the server, usable from any event loop the test runs; its
    connections are closed after the test."""
    import asyncio

    from novita_flux import AsyncFluxSchnell

    client = AsyncFluxSchnell(api_key=novita_server.api_key, base_url=novita_server.url)
    yield client
    # The test's loop is gone by now: close in a fresh one; connections bound to the old loop
    # may refuse to close cleanly, and then the operating system closes them.
    with contextlib.suppress(Exception):
        asyncio.run(client.close())


def _marker_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for marker in reversed(list(request.node.iter_markers(MARKER))):  # the closest wins
        if marker.args:
            pytest.fail(f"@pytest.mark.{MARKER} takes keyword arguments only", False)
        unknown = set(marker.kwargs) - set(_OPTIONS)
        if unknown:
            pytest.fail(
                f"@pytest.mark.{MARKER}: unknown option(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(_OPTIONS)}",
                False,
            )
        options.update(marker.kwargs)
    return options
