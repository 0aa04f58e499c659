"""Explicit examples for how images are fetched and saved, driven through the public API
(`download`, `save`, and the async client): the exact messages of connection and download
errors, the per-call timeout reaching the image request, redirects and their limit, the wait a
storage host names in Retry-After, the User-Agent, shared SSL context and idle connections of
the client's own httpx client, a link that cannot be fetched at all, and how `save` creates its
folder, stages files in it and carries on past one failing image.

Every exchange is mocked with respx (but the own pool's, which meets a listener on 127.0.0.1 in
the test's own event loop) and every backoff recorded by the `sleeps` fixture, so nothing here
touches the network or waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import respx

from novita_flux import (
    APIConnectionError,
    APITimeoutError,
    AsyncFluxSchnell,
    FluxSchnell,
    ImageDownloadError,
    SaveIncompleteError,
    ValidationError,
    _base_client,
    _deadline,
    _faultpoints,
)
from novita_flux._base_client import _connection_error
from novita_flux._config import ssl_context
from novita_flux._constants import MAX_REDIRECTS
from tests.support import API_URL, KEY, MAGIC, Sleeps, generation_of, hooked, image_url

BILLED = "; the call may have been billed, so it was not retried"


def generate_error(cause: Exception) -> Exception:
    with respx.mock:
        respx.post(API_URL).mock(side_effect=cause)
        with pytest.raises((APIConnectionError, APITimeoutError)) as caught:
            FluxSchnell(api_key=KEY, max_retries=0).generate("x", seed=1)
    return caught.value


# --- _connection_error, through generate ---


def test_a_refused_connection_names_method_url_type_and_text_without_billing_note(
    sleeps: Sleeps,
) -> None:
    cause = httpx.ConnectError("refused")
    error = generate_error(cause)
    assert type(error) is APIConnectionError
    assert str(error) == f"POST {API_URL} failed: ConnectError: refused"
    assert error.__cause__ is cause


def test_a_sent_request_that_breaks_carries_the_billing_note(sleeps: Sleeps) -> None:
    error = generate_error(httpx.RemoteProtocolError("cut"))
    assert type(error) is APIConnectionError
    assert str(error) == f"POST {API_URL} failed: RemoteProtocolError: cut{BILLED}"


def test_a_read_timeout_names_its_type_and_carries_the_billing_note(sleeps: Sleeps) -> None:
    error = generate_error(httpx.ReadTimeout("slow"))
    assert type(error) is APITimeoutError
    assert str(error) == f"POST {API_URL} timed out (ReadTimeout){BILLED}"


def test_a_connect_timeout_has_no_billing_note(sleeps: Sleeps) -> None:
    error = generate_error(httpx.ConnectTimeout("t"))
    assert type(error) is APITimeoutError
    assert str(error) == f"POST {API_URL} timed out (ConnectTimeout)"


def test_the_url_in_a_connection_error_loses_its_query() -> None:
    # The API's own URL has no query, so this one case is shown on the helper itself.
    request = httpx.Request("POST", "https://api.example.com/v3beta/x?token=secret")
    error = _connection_error(httpx.ConnectError("no"), request)
    assert str(error) == "POST https://api.example.com/v3beta/x failed: ConnectError: no"


# --- _download_flow ---


def test_the_per_call_timeout_is_used_for_the_image_request(sleeps: Sleeps) -> None:
    image = generation_of("png").images[0]
    with respx.mock:
        route = respx.get(image_url(0)).respond(200, content=MAGIC["png"])
        FluxSchnell(api_key=KEY, timeout=60).download(image, timeout=12.5)
    timeout = route.calls[0].request.extensions["timeout"]
    assert timeout == {"connect": 12.5, "read": 12.5, "write": 12.5, "pool": 12.5}


def test_the_per_call_timeout_bounds_the_whole_exchange(
    sleeps: Sleeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[float | None] = []
    original = _deadline.deadline_in

    def spy(seconds: float | None) -> Any:
        seen.append(seconds)
        return original(seconds)

    monkeypatch.setattr(_deadline, "deadline_in", spy)
    image = generation_of("png").images[0]
    with respx.mock:
        respx.get(image_url(0)).respond(200, content=MAGIC["png"])
        FluxSchnell(api_key=KEY, timeout=60).download(image, timeout=12.5)
    assert seen == [12.5]


def download_error(cause: Exception) -> ImageDownloadError:
    image = generation_of("png").images[0]
    with respx.mock:
        respx.get(image_url(0)).mock(side_effect=cause)
        with pytest.raises(ImageDownloadError) as caught:
            FluxSchnell(api_key=KEY, max_retries=0).download(image)
    return caught.value


def test_a_download_timeout_says_it_took_longer_than_its_timeout(sleeps: Sleeps) -> None:
    cause = httpx.ReadTimeout("slow")
    error = download_error(cause)
    assert str(error) == "the download of image 0 took longer than its timeout: ReadTimeout: slow"
    assert error.__cause__ is cause


def test_a_download_transport_error_says_it_failed(sleeps: Sleeps) -> None:
    cause = httpx.ConnectError("refused")
    error = download_error(cause)
    assert str(error) == "the download of image 0 failed: ConnectError: refused"
    assert error.__cause__ is cause


def redirect_chain(hops: int) -> respx.Route:
    """The image link redirects `hops` times (302, relative Location) before the image."""

    def answer(request: httpx.Request) -> httpx.Response:
        step = int(request.url.params.get("hop", "0"))
        if step < hops:
            return httpx.Response(302, headers={"Location": f"/next?hop={step + 1}"})
        return httpx.Response(200, content=MAGIC["png"])

    return respx.route(host="storage.example.com").mock(side_effect=answer)


def test_redirects_are_followed_up_to_the_limit(sleeps: Sleeps) -> None:
    image = generation_of("png").images[0]
    with respx.mock:
        route = redirect_chain(MAX_REDIRECTS)
        data = FluxSchnell(api_key=KEY, max_retries=0).download(image)
    assert data == MAGIC["png"]
    assert route.call_count == MAX_REDIRECTS + 1
    assert (
        str(route.calls[-1].request.url) == f"https://storage.example.com/next?hop={MAX_REDIRECTS}"
    )


def test_one_redirect_more_than_the_limit_is_refused(sleeps: Sleeps) -> None:
    image = generation_of("png").images[0]
    with respx.mock:
        route = redirect_chain(MAX_REDIRECTS + 1)
        with pytest.raises(ImageDownloadError) as caught:
            FluxSchnell(api_key=KEY, max_retries=0).download(image)
    assert route.call_count == MAX_REDIRECTS + 1
    assert str(caught.value).startswith("the storage host answered 302 for image 0")


def test_a_redirect_without_location_is_not_followed(sleeps: Sleeps) -> None:
    image = generation_of("png").images[0]
    with respx.mock:
        route = respx.route(host="storage.example.com").respond(302)
        with pytest.raises(ImageDownloadError) as caught:
            FluxSchnell(api_key=KEY, max_retries=0).download(image)
    assert route.call_count == 1
    assert str(caught.value).startswith("the storage host answered 302 for image 0")


@pytest.mark.parametrize("status", [503, 429])
def test_a_storage_host_retry_after_is_waited_as_said(sleeps: Sleeps, status: int) -> None:
    image = generation_of("png").images[0]
    with respx.mock:
        route = respx.get(image_url(0)).mock(
            side_effect=[
                httpx.Response(status, headers={"Retry-After": "7"}),
                httpx.Response(200, content=MAGIC["png"]),
            ]
        )
        data = FluxSchnell(api_key=KEY).download(image)
    assert data == MAGIC["png"]
    assert route.call_count == 2
    assert sleeps == [7.0]


@pytest.mark.anyio
async def test_the_async_client_waits_a_storage_retry_after_too(sleeps: Sleeps) -> None:
    image = generation_of("png").images[0]
    with respx.mock:
        respx.get(image_url(0)).mock(
            side_effect=[
                httpx.Response(503, headers={"Retry-After": "3"}),
                httpx.Response(200, content=MAGIC["png"]),
            ]
        )
        async with AsyncFluxSchnell(api_key=KEY) as client:
            data = await client.download(image)
    assert data == MAGIC["png"]
    assert sleeps == [3.0]


@pytest.mark.anyio
async def test_the_async_client_uses_the_per_call_timeout(sleeps: Sleeps) -> None:
    image = generation_of("png").images[0]
    with respx.mock:
        route = respx.get(image_url(0)).respond(200, content=MAGIC["png"])
        async with AsyncFluxSchnell(api_key=KEY, timeout=60) as client:
            await client.download(image, timeout=9.0)
    assert route.calls[0].request.extensions["timeout"]["read"] == 9.0


# --- _unfetchable ---


def test_a_link_whose_port_is_out_of_range_is_refused_unsent_naming_its_image() -> None:
    """No request is made: the error names the image, why, and the link cut to 120 characters
    (this one is 119, so its repr of 121 is cut)."""
    url = "https://storage.example.com:70000/out/" + "a" * 81
    assert len(url) == 119
    image = attrs.evolve(generation_of("png").images[0], url=url)
    with respx.mock, pytest.raises(ImageDownloadError) as caught:  # nothing may go out
        FluxSchnell(api_key=KEY).download(image)
    assert str(caught.value) == (
        "the link of image 0 cannot be fetched: its port 70000 is not in [0, 65535]: "
        + repr(url)[:117]
        + "... (119 characters)"
    )


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://[::1/0.png", "Invalid port: ':1'"),  # httpx cannot build the request
        ("https://xn--a/0.png", "Codepoint U+0080 at position 1 of '\\x80' not allowed"),  # idna
    ],
)
def test_a_link_httpx_cannot_make_a_request_of_is_refused_unsent_naming_its_image(
    url: str, why: str
) -> None:
    image = attrs.evolve(generation_of("png").images[0], url=url)
    with respx.mock, pytest.raises(ImageDownloadError) as caught:
        FluxSchnell(api_key=KEY).download(image)
    assert str(caught.value) == f"the link of image 0 cannot be fetched: {why}: {url!r}"


def test_a_bare_link_that_cannot_be_fetched_names_no_image() -> None:
    url = "https://storage.example.com:70000/0.png"
    with pytest.raises(ImageDownloadError) as caught:
        FluxSchnell(api_key=KEY).build_image_request(url)
    assert str(caught.value) == (
        "the link cannot be fetched: its port 70000 is not in [0, 65535]: "
        "'https://storage.example.com:70000/0.png' (39 characters)"
    )


# --- _new_http ---


def test_the_clients_own_http_client_sends_its_user_agent_to_the_image_host(
    sleeps: Sleeps,
) -> None:
    image = generation_of("png").images[0]
    with respx.mock:
        route = respx.get(image_url(0)).respond(200, content=MAGIC["png"])
        FluxSchnell(api_key=KEY).download(image)
    assert route.calls[0].request.headers["User-Agent"].startswith("novita-flux/")


@pytest.mark.anyio
async def test_the_async_clients_own_pool_loads_no_ca_bundle_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Loading the CA bundle is most of what opening a client costs: every client this package
    opens shares the one SSL context (with its trust), neither loading its own when it opens
    (httpx's `verify=True`) nor when it first meets TLS (httpcore's default, without one)."""
    ssl_context()  # loaded once, for every client
    loads: list[object] = []
    original = ssl.SSLContext.load_verify_locations

    def load(context: ssl.SSLContext, *args: Any, **kwargs: Any) -> None:
        loads.append(args or kwargs)
        original(context, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", load)

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()  # the TLS handshake fails, after the pool has chosen its context

    async with (
        await asyncio.start_server(hang_up, "127.0.0.1", 0) as listener,
        AsyncFluxSchnell(api_key=KEY) as client,
    ):
        port = listener.sockets[0].getsockname()[1]
        request = client.build_image_request(f"https://127.0.0.1:{port}/0.png")
        with pytest.raises(httpx.ConnectError):
            await client.send(request, authenticate=False)
    assert loads == []


@pytest.mark.anyio
async def test_the_async_clients_own_pool_keeps_every_connection_of_a_burst_for_the_next() -> None:
    """POOL_LIMITS keeps as many idle connections as the pool may open: a burst of 24 calls at
    once is followed by another without opening a connection more (httpx's default keeps 20)."""
    burst = 24
    connections = 0
    waiting: list[asyncio.Future[None]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        with contextlib.suppress(asyncio.IncompleteReadError):  # the client hung up: done
            while await reader.readuntil(b"\r\n\r\n"):
                # Each request is held until the whole burst has arrived, so none can reuse
                # another's connection within the burst.
                arrived = asyncio.get_running_loop().create_future()
                waiting.append(arrived)
                if len(waiting) == burst:
                    for future in waiting:
                        future.set_result(None)
                    waiting.clear()
                await arrived
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()

    async with (
        await asyncio.start_server(serve, "127.0.0.1", 0) as listener,
        AsyncFluxSchnell(api_key=KEY) as client,
    ):
        port = listener.sockets[0].getsockname()[1]
        for _ in range(2):
            requests = [
                client.build_image_request(f"http://127.0.0.1:{port}/{i}.png") for i in range(burst)
            ]
            answers = await asyncio.gather(
                *(client.send(request, authenticate=False) for request in requests)
            )
            assert [answer.status_code for answer in answers] == [200] * burst
    assert connections == burst


# --- _save_flow ---


def test_save_creates_a_folder_nested_two_levels_deep(sleeps: Sleeps, tmp_path: Path) -> None:
    folder = tmp_path / "a" / "b"
    generation = generation_of("png")
    with respx.mock:
        respx.get(image_url(0)).respond(200, content=MAGIC["png"])
        paths = FluxSchnell(api_key=KEY).save(generation, folder)
    assert [p.parent for p in paths] == [folder]
    assert paths[0].read_bytes() == MAGIC["png"]


def test_save_stages_the_temporary_file_in_the_target_folder(
    sleeps: Sleeps, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Path] = []
    original = _base_client.staged_file

    def spy(directory: Path) -> Any:
        seen.append(directory)
        return original(directory)

    monkeypatch.setattr(_base_client, "staged_file", spy)
    generation = generation_of("png", "png")
    with respx.mock:
        respx.get(image_url(0)).respond(200, content=MAGIC["png"])
        respx.get(image_url(1)).respond(200, content=MAGIC["png"])
        FluxSchnell(api_key=KEY).save(generation, tmp_path / "out")
    assert seen == [tmp_path / "out", tmp_path / "out"]


def test_save_logs_a_failing_image_and_still_saves_the_next(
    sleeps: Sleeps, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    generation = generation_of("png", "png", "png")
    with respx.mock:
        respx.get(image_url(0)).respond(200, content=MAGIC["png"])
        respx.get(image_url(1)).respond(404, text="gone")
        respx.get(image_url(2)).respond(200, content=MAGIC["png"])
        with (
            caplog.at_level(logging.WARNING, logger="novita_flux"),
            pytest.raises(SaveIncompleteError) as caught,
        ):
            FluxSchnell(api_key=KEY).save(generation, tmp_path)
    error = caught.value
    assert [image.index for image, _ in error.failures] == [1]
    assert [p.name.rsplit("_", 1)[-1] for p in error.saved] == ["0.png", "2.png"]
    assert all(p.read_bytes() == MAGIC["png"] for p in error.saved)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [(r.name, r.getMessage()) for r in warnings] == [
        ("novita_flux", "the storage host answered 404 for image 1: gone")
    ]


def test_save_passes_the_per_call_timeout_to_the_download(sleeps: Sleeps, tmp_path: Path) -> None:
    generation = generation_of("png")
    with respx.mock:
        route = respx.get(image_url(0)).respond(200, content=MAGIC["png"])
        FluxSchnell(api_key=KEY, timeout=60).save(generation, tmp_path, timeout=4.0)
    assert route.calls[0].request.extensions["timeout"]["read"] == 4.0


def test_save_passes_each_fault_point_by_name_when_it_is_reached(
    sleeps: Sleeps, tmp_path: Path
) -> None:
    # The fault tests (which mutmut does not run) stop a save at these names: a point renamed,
    # dropped or moved would be one they no longer reach, or reach at another moment. Beside each
    # name: the files then under their final names (the staged ones are hidden).
    reached: list[tuple[str, list[str]]] = []

    def record(point: str) -> None:
        names = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))
        reached.append((point, names))

    generation = generation_of("png", "jpeg")
    png, jpg = "x_1024x1024_s4_seed1_0.png", "x_1024x1024_s4_seed1_1.jpg"
    with hooked(record), respx.mock:
        respx.get(image_url(0)).respond(200, content=MAGIC["png"])
        respx.get(image_url(1, "jpeg")).respond(200, content=MAGIC["jpeg"])
        FluxSchnell(api_key=KEY).save(generation, tmp_path, metadata=True)
    first = [png, png + ".json"]
    assert reached == [
        ("image.downloading", []),
        ("write.image", []),
        ("image.downloaded", []),  # whole, not yet under its name
        ("image.published", [png]),  # under its name, no sidecar yet
        ("write.file", [png]),
        ("image.downloading", first),
        ("write.image", first),
        ("image.downloaded", first),
        ("image.published", sorted([*first, jpg])),
        ("write.file", sorted([*first, jpg])),
    ]
    assert {point for point, _ in reached} <= set(_faultpoints.POINTS)


def test_save_refuses_a_generation_its_sidecars_cannot_describe_before_fetching_anything(
    sleeps: Sleeps, tmp_path: Path
) -> None:
    # A sidecar is written after its image: found only then, the image would be saved and the
    # call fail half-way. With metadata=False the same generation is saved.
    generation = attrs.evolve(generation_of("png"), request={"prompt": "x", "tags": {"a"}})
    with respx.mock:
        route = respx.get(image_url(0)).respond(200, content=MAGIC["png"])
        with pytest.raises(ValidationError, match="a generation JSON can describe"):
            FluxSchnell(api_key=KEY).save(generation, tmp_path / "out", metadata=True)
        assert not route.called
        assert not (tmp_path / "out").exists()
        assert len(FluxSchnell(api_key=KEY).save(generation, tmp_path / "out")) == 1


def test_save_refuses_a_bad_timeout_before_creating_its_folder(
    sleeps: Sleeps, tmp_path: Path
) -> None:
    with respx.mock:
        route = respx.get(image_url(0)).respond(200, content=MAGIC["png"])
        with pytest.raises(ValidationError, match="timeout"):
            FluxSchnell(api_key=KEY).save(generation_of("png"), tmp_path / "out", timeout=-1)
    assert not route.called
    assert not (tmp_path / "out").exists()


@pytest.mark.anyio
async def test_the_async_clients_own_http_client_sends_its_user_agent_to_the_image_host(
    sleeps: Sleeps,
) -> None:
    # The sync client builds its own pool; the async one uses _BaseClient._new_http.
    image = generation_of("png").images[0]
    with respx.mock:
        route = respx.get(image_url(0)).respond(200, content=MAGIC["png"])
        async with AsyncFluxSchnell(api_key=KEY) as client:
            await client.download(image)
    assert route.calls[0].request.headers["User-Agent"].startswith("novita-flux/")


@pytest.mark.parametrize(
    ("status", "hops"), [(302, MAX_REDIRECTS), (302, MAX_REDIRECTS + 1), (300, 1), (308, 1)]
)
def test_verify_follows_image_redirects_exactly_as_far_as_the_client_does(
    sleeps: Sleeps, status: int, hops: int
) -> None:
    """One rule for both (any 3xx with a Location, up to MAX_REDIRECTS): verify reports what a
    download would meet."""
    from novita_flux.verify._exchange import Transport

    image = generation_of("png").images[0]

    def answer(request: httpx.Request) -> httpx.Response:
        step = int(request.url.params.get("hop", "0"))
        if step < hops:
            return httpx.Response(status, headers={"Location": f"/next?hop={step + 1}"})
        return httpx.Response(200, content=MAGIC["png"])

    with respx.mock:
        route = respx.route(host="storage.example.com").mock(side_effect=answer)
        with contextlib.suppress(ImageDownloadError):
            FluxSchnell(api_key=KEY, max_retries=0).download(image)
        by_client = route.call_count
        with Transport(api_key=KEY, base_url=None, timeout=5) as transport:
            fetched = transport.fetch(image.url)
    assert len(fetched) == by_client == min(hops, MAX_REDIRECTS) + 1
