"""A server that trickles bytes cannot hold an exchange past its deadline (_deadline).

httpx's timeouts bound each read; a server sending one byte of its status line every 50 ms
never trips any of them. These tests use a bare socket server, so the trickle starts before
any header is complete: what holds the exchange to its deadline is the client's own network
backend (sync) or `asyncio.timeout` (async), not a check between body chunks.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from novita_flux import APITimeoutError, AsyncFluxSchnell, FluxSchnell
from novita_flux._transport import DeadlineTransport

TIMEOUT = 0.5
# Long enough that a client without a deadline would be seen to wait for it, short enough that
# such a client fails the test instead of hanging it.
TRICKLE_FOR = 4.0


@pytest.fixture
def trickling() -> Iterator[str]:
    """A server that reads a request, then sends its answer one byte every 50 ms."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(connection: socket.socket) -> None:
        with connection:
            connection.recv(65536)
            answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" * 1000
            started = time.monotonic()
            for byte in answer:
                if stop.is_set() or time.monotonic() - started > TRICKLE_FOR:
                    return
                try:
                    connection.sendall(bytes([byte]))
                except OSError:  # the client gave up: what the test wants
                    return
                time.sleep(0.05)

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(connection,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()


def test_a_trickling_server_cannot_hold_a_sync_exchange_past_its_deadline(trickling: str) -> None:
    started = time.monotonic()
    with (
        FluxSchnell(api_key="k", base_url=trickling, timeout=TIMEOUT, max_retries=0) as flux,
        pytest.raises(APITimeoutError) as raised,
    ):
        flux.generate("x")
    assert time.monotonic() - started < TIMEOUT + 0.5
    assert raised.value.possibly_billed


def test_a_trickling_server_cannot_hold_an_async_exchange_past_its_deadline(
    trickling: str,
) -> None:
    async def call() -> None:
        async with AsyncFluxSchnell(
            api_key="k", base_url=trickling, timeout=TIMEOUT, max_retries=0
        ) as flux:
            await flux.generate("x")

    started = time.monotonic()
    with pytest.raises(APITimeoutError):
        asyncio.run(call())
    assert time.monotonic() - started < TIMEOUT + 0.5


def test_the_deadline_transport_raises_httpx_errors_as_httpx_own_transport_does() -> None:
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    request = httpx.Request("GET", f"http://127.0.0.1:{port}/")
    ours = DeadlineTransport(httpx.create_ssl_context(), httpx.Limits())
    with ours, pytest.raises(httpx.ConnectError) as raised:
        ours.handle_request(request)
    with httpx.HTTPTransport() as theirs, pytest.raises(httpx.ConnectError) as expected:
        theirs.handle_request(request)
    assert str(raised.value) == str(expected.value)
    assert type(raised.value.__cause__) is type(expected.value.__cause__)
