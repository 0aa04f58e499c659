"""The clients against the reference server: over real HTTP (uvicorn on loopback) and
in-process, with faults injected on the server retried or raised as the overlay promises."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import example, given
from PIL import Image

from novita_flux import (
    APITimeoutError,
    AsyncFluxSchnell,
    FluxSchnell,
    ImageDownloadError,
    InternalServerError,
    RateLimitError,
    ResponseValidationError,
)
from novita_flux.testing import ReferenceServer
from tests.strategies import extreme_request, valid_requests
from tests.support import Sleeps

PILLOW_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


@pytest.fixture(scope="module")
def running() -> Iterator[ReferenceServer]:
    with ReferenceServer() as server:
        yield server


@pytest.fixture
def server(running: ReferenceServer) -> Iterator[ReferenceServer]:
    running.faults.reset()
    yield running
    running.faults.reset()  # no fault or latency leaks into the next test


def client_for(server: ReferenceServer, **options: object) -> FluxSchnell:
    return FluxSchnell(api_key=server.api_key, base_url=server.url, **options)  # type: ignore[arg-type]


def assert_images(paths: list[Path], size: tuple[int, int], image_type: str) -> None:
    for path in paths:
        with Image.open(path) as image:
            assert (image.format, image.size) == (PILLOW_FORMATS[image_type], size)


# --- the whole path, both clients ---------------------------------------------------------------


@pytest.mark.parametrize("image_type", ["png", "jpeg", "webp"])
def test_sync_client_generates_downloads_and_saves_real_images(
    server: ReferenceServer, tmp_path: Path, image_type: str
) -> None:
    with client_for(server) as flux:
        generation = flux.generate(
            "a harbour", width=200, height=120, image_num=2, response_image_type=image_type
        )
        data = flux.download(generation.images[0])
        paths = flux.save(generation, tmp_path)
    assert len(paths) == 2
    assert paths[0].read_bytes() == data
    assert_images(paths, (200, 120), image_type)
    assert server.faults.image_requests_with_authorization == 0
    assert server.faults.api_requests == 1


@pytest.mark.anyio
async def test_async_client_generates_downloads_and_saves_real_images(
    server: ReferenceServer, tmp_path: Path
) -> None:
    async with AsyncFluxSchnell(api_key=server.api_key, base_url=server.url) as flux:
        generation = await flux.generate("a harbour", width=96, height=160, image_num=3)
        paths = await flux.save(generation, tmp_path)
        assert await flux.download(generation.images[2]) == paths[2].read_bytes()
    assert_images(paths, (96, 160), "png")
    assert server.faults.image_requests_with_authorization == 0


def test_the_same_request_gives_the_same_bytes_and_another_seed_does_not(
    server: ReferenceServer,
) -> None:
    with client_for(server) as flux:
        first, again, other = (
            flux.download(flux.generate("a cat", width=64, height=64, seed=seed).images[0])
            for seed in (1, 1, 2)
        )
    assert first == again
    assert first != other


# --- faults on the server, as the client promises to handle them -------------------------------


def test_a_rate_limit_is_waited_out_as_retry_after_says(
    server: ReferenceServer, sleeps: Sleeps
) -> None:
    server.faults.rate_limit_next(2, retry_after=3)
    with client_for(server) as flux:
        flux.generate("x", width=64, height=64)
    assert sleeps == [3.0, 3.0]
    assert server.faults.api_requests == 3


def test_server_errors_beyond_the_retries_raise_with_reason_and_task_id(
    server: ReferenceServer, sleeps: Sleeps
) -> None:
    server.faults.fail_next(3, reason="TASK_FAILED")
    with client_for(server, max_retries=2) as flux, pytest.raises(InternalServerError) as raised:
        flux.generate("x", width=64, height=64)
    assert server.faults.api_requests == 3
    assert (raised.value.status_code, raised.value.reason) == (500, "TASK_FAILED")
    assert raised.value.task_id


def test_a_rate_limited_key_gives_rate_limit_error_after_the_retries(
    server: ReferenceServer, sleeps: Sleeps
) -> None:
    server.faults.images_per_minute = 2
    with client_for(server) as flux:
        flux.generate("x", width=64, height=64, image_num=2)
        with pytest.raises(RateLimitError) as raised:
            flux.generate("x", width=64, height=64)
    assert raised.value.retry_after is not None
    assert raised.value.retry_after > 0
    assert server.faults.api_requests == 1 + 3


@pytest.mark.parametrize(
    "kind", ["not_json", "truncated_json", "missing_field", "wrong_type", "unknown_image_type"]
)
def test_a_malformed_answer_raises_response_validation_error(
    server: ReferenceServer, kind: str
) -> None:
    server.faults.malform_next(1, kind=kind)  # type: ignore[arg-type]
    with client_for(server) as flux, pytest.raises(ResponseValidationError):
        flux.generate("x", width=64, height=64)
    assert server.faults.api_requests == 1  # a 200 may be billed: never retried


def test_a_hung_server_gives_a_timeout_within_the_configured_time(server: ReferenceServer) -> None:
    server.faults.latency = 1.5  # the server answers long after the client gave up
    started = time.monotonic()
    with client_for(server, timeout=0.3) as flux, pytest.raises(APITimeoutError):
        flux.generate("x", width=64, height=64)
    assert time.monotonic() - started < 1.0  # one attempt, not three: it may have been billed
    assert server.faults.api_requests == 1


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_a_link_past_its_expiry_is_refused_by_the_storage_host(sleeps: Sleeps) -> None:
    clock = Clock()
    with ReferenceServer(image_url_ttl=60, clock=clock) as server, client_for(server) as flux:
        image = flux.generate("x", width=64, height=64).images[0]
        assert httpx.get(image.url).status_code == 200
        clock.now += 61
        assert httpx.get(image.url).status_code == 403
        with pytest.raises(ImageDownloadError, match="403"):
            flux.download(image)


# --- client and server agree across the whole input space ---------------------------------------


@given(request=valid_requests())
@example(request=extreme_request(0))
@example(request=extreme_request(1))
def test_every_valid_request_gets_an_answer_the_client_parses(
    running: ReferenceServer, request: dict
) -> None:
    with client_for(running) as flux:
        generation = flux.generate(**request)
    sent_type = request.get("response_image_type", "png")  # generate()'s default
    assert generation.request == {**request, "response_image_type": sent_type}
    assert len(generation.images) == request["image_num"]
    assert all(image.type == sent_type for image in generation.images)
    assert all(not image.expired for image in generation.images)
