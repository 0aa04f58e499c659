"""The clients against the reference server: over real HTTP (uvicorn on loopback) and
in-process, with faults injected on the server retried or raised as the overlay promises."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
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
    ImageExpiredError,
    InternalServerError,
    RateLimitError,
    ResponseValidationError,
    SaveIncompleteError,
)
from novita_flux.testing import PROFILE_NAMES, Faults, ReferenceServer
from tests.strategies import extreme_request, valid_requests
from tests.support import Sleeps

PILLOW_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


@pytest.fixture(scope="module", params=PROFILE_NAMES)
def running(request: pytest.FixtureRequest) -> Iterator[ReferenceServer]:
    """The reference server answering as the docs page draws it, then as the API was seen to."""
    with ReferenceServer(profile=request.param) as server:
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
    server.faults.rate_limit_next(2, retry_after=3)  # explicit, whatever the profile
    with client_for(server) as flux:
        flux.generate("x", width=64, height=64)
    assert sleeps == [3.0, 3.0]
    assert server.faults.api_requests == 3


def test_an_unbilled_server_error_beyond_the_retries_raises_with_its_reason(
    server: ReferenceServer, sleeps: Sleeps
) -> None:
    server.faults.fail_next(3, reason="SERVICE_NOT_AVAILABLE")
    with client_for(server, max_retries=2) as flux, pytest.raises(InternalServerError) as raised:
        flux.generate("x", width=64, height=64)
    assert server.faults.api_requests == 3
    assert (raised.value.status_code, raised.value.reason) == (503, "SERVICE_NOT_AVAILABLE")
    assert not raised.value.possibly_billed


def test_a_rate_limited_key_gives_rate_limit_error_after_the_retries(
    server: ReferenceServer, sleeps: Sleeps
) -> None:
    server.faults.images_per_minute = 2
    with client_for(server) as flux:
        flux.generate("x", width=64, height=64, image_num=2)
        with pytest.raises(RateLimitError) as raised:
            flux.generate("x", width=64, height=64)
    if server.faults.profile.retry_after_on_429:
        assert raised.value.retry_after is not None
        assert raised.value.retry_after > 0
    else:  # the API is not seen to send Retry-After: the client backs off on its own
        assert raised.value.retry_after is None
        assert len(sleeps) == 2
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


def test_a_link_the_storage_host_calls_expired_raises_image_expired_error(sleeps: Sleeps) -> None:
    clock = Clock()
    with ReferenceServer(image_url_ttl=60, clock=clock) as server, client_for(server) as flux:
        image = flux.generate("x", width=64, height=64).images[0]
        assert httpx.get(image.url).status_code == 200
        clock.now += 61  # the host's clock only: the client still thinks the link is good
        assert httpx.get(image.url).status_code == 403
        with pytest.raises(ImageExpiredError, match="Request has expired"):
            flux.download(image)
    assert sleeps == []  # an expired link is never retried


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


# --- what the real API sends, read tolerantly (both profiles) -----------------------------------


def test_a_generation_keeps_what_the_spec_does_not_name(server: ReferenceServer) -> None:
    with client_for(server) as flux:
        generation = flux.generate("x", width=64, height=64, image_num=2, seed=5)
    assert all(type(image.ttl) is int and image.ttl == 3600 for image in generation.images)
    sent_ttl = generation.raw["images"][0]["image_url_ttl"]
    if server.faults.profile.name == "observed":
        assert sent_ttl == "3600"  # a string on the wire, a number to the caller
        assert generation.images[0].extra["nsfw_detection_result"] == {
            "valid": True,
            "confidence": 0.01,
        }
        assert generation.images[1].extra == {"nsfw_detection_result": None}
        assert generation.raw["extra"]["seed"] == "5"
        assert generation.raw["task"]["status"] == "TASK_STATUS_SUCCEED"
    else:
        assert sent_ttl == 3600
        assert generation.images[0].extra == {}


@pytest.mark.parametrize("profile", PROFILE_NAMES)
def test_a_link_with_ttl_0_states_no_expiry_and_downloads_long_after(profile: str) -> None:
    clock = Clock()
    with (
        ReferenceServer(image_url_ttl=0, clock=clock, profile=profile) as server,  # type: ignore[arg-type]
        client_for(server) as flux,
    ):
        image = flux.generate("x", width=64, height=64).images[0]
        assert (image.ttl, image.expires_at, image.expired) == (0, None, False)
        clock.now += 365 * 86400  # a year later, on the host's clock
        data = flux.download(image)
    assert data.startswith(b"\x89PNG")


def test_an_image_cut_short_is_never_saved_and_is_fetched_again(
    server: ReferenceServer, tmp_path: Path, sleeps: Sleeps
) -> None:
    with client_for(server, max_retries=1) as flux:
        generation = flux.generate("x", width=64, height=64)
        server.faults.cut_images_next(1)
        (path,) = flux.save(generation, tmp_path)  # the cut answer, then a whole one
        assert_images([path], (64, 64), "png")
        server.faults.cut_images_next(2)
        with pytest.raises(SaveIncompleteError, match=r"ended .* before the image did"):
            flux.save(generation, tmp_path / "again")
    assert list((tmp_path / "again").iterdir()) == []  # nothing half-written under any name
    assert server.faults.image_downloads == 4


def test_one_image_that_fails_does_not_stop_the_others_of_its_generation(
    server: ReferenceServer, tmp_path: Path
) -> None:
    with client_for(server, max_retries=0) as flux:
        generation = flux.generate("x", width=64, height=64, image_num=3)
        server.faults.cut_images_next(1)  # the first image's only try
        with pytest.raises(SaveIncompleteError) as raised:
            flux.save(generation, tmp_path, metadata=True)
    error = raised.value
    assert [path.name.rsplit("_", 1)[1] for path in error.saved] == ["1.png", "2.png"]
    assert all(path.is_file() for path in error.saved)
    ((image, cause),) = error.failures
    assert image.index == 0
    assert "ended" in str(cause)
    assert image.url in str(error)  # the link that remains, to fetch while it lasts
    assert generation.task_id in str(error)
    assert not error.expired


# --- retries that cannot pay twice --------------------------------------------------------------


@pytest.mark.parametrize(
    ("plan", "status"),
    [
        (lambda faults: faults.fail_next(1, reason="TASK_FAILED"), 500),
        (lambda faults: faults.gateway_error_next(1, status=502), 502),
        (lambda faults: faults.gateway_error_next(1, status=504), 504),
    ],
)
def test_a_server_error_that_may_be_billed_is_raised_not_retried_unless_asked(
    server: ReferenceServer, sleeps: Sleeps, plan: Callable[[Faults], None], status: int
) -> None:
    plan(server.faults)
    with client_for(server) as flux, pytest.raises(InternalServerError) as raised:
        flux.generate("x", width=64, height=64)
    assert server.faults.api_requests == 1
    assert raised.value.status_code == status
    assert raised.value.possibly_billed
    assert "may have been billed" in str(raised.value)

    plan(server.faults)  # the same answer, with the caller's consent to pay twice
    with client_for(server, retry_server_errors=True) as flux:
        assert flux.generate("x", width=64, height=64).images
    assert server.faults.api_requests == 3
    assert len(sleeps) == 1


@pytest.mark.parametrize("reason", ["RATE_LIMIT_EXCEEDED", "SERVICE_NOT_AVAILABLE"])
def test_answers_known_not_billed_are_retried(
    server: ReferenceServer, sleeps: Sleeps, reason: str
) -> None:
    server.faults.fail_next(2, reason=reason)
    with client_for(server) as flux:
        assert flux.generate("x", width=64, height=64).images
    assert server.faults.api_requests == 3


# --- a deadline for the whole exchange ----------------------------------------------------------


def test_a_dripping_answer_cannot_hold_a_sync_call_past_its_timeout(
    server: ReferenceServer,
) -> None:
    server.faults.drip_next(1, interval=0.1)  # a ~400-byte body: 40 s, every read within 0.1 s
    started = time.monotonic()
    with client_for(server, timeout=1.0) as flux, pytest.raises(APITimeoutError) as raised:
        flux.generate("x", width=64, height=64)
    assert time.monotonic() - started < 1.5
    assert raised.value.possibly_billed  # the request had left: it may have run
    assert server.faults.api_requests == 1


@pytest.mark.anyio
async def test_a_dripping_answer_cannot_hold_an_async_call_past_its_timeout(
    server: ReferenceServer,
) -> None:
    server.faults.drip_next(1, interval=0.1)
    started = time.monotonic()
    async with AsyncFluxSchnell(api_key=server.api_key, base_url=server.url, timeout=1.0) as flux:
        with pytest.raises(APITimeoutError):
            await flux.generate("x", width=64, height=64)
    assert time.monotonic() - started < 1.5
    assert server.faults.api_requests == 1


@pytest.mark.parametrize("client_kind", ["sync", "async"])
@pytest.mark.anyio
async def test_a_dripping_image_cannot_hold_a_download_past_its_timeout(
    server: ReferenceServer, client_kind: str
) -> None:
    with client_for(server) as flux:
        image = flux.generate("x", width=64, height=64).images[0]
    server.faults.drip_images_next(1, interval=0.05)
    started = time.monotonic()
    options = {"api_key": server.api_key, "base_url": server.url, "timeout": 1.0, "max_retries": 0}
    if client_kind == "sync":
        with FluxSchnell(**options) as flux, pytest.raises(ImageDownloadError) as raised:  # type: ignore[arg-type]
            flux.download(image)
    else:
        async with AsyncFluxSchnell(**options) as flux:  # type: ignore[arg-type]
            with pytest.raises(ImageDownloadError) as raised:
                await flux.download(image)
    assert time.monotonic() - started < 1.5
    assert "longer than its timeout" in str(raised.value)


def test_an_injected_sync_client_still_stops_a_dripping_download_at_its_timeout(
    server: ReferenceServer,
) -> None:
    with client_for(server) as flux:
        image = flux.generate("x", width=64, height=64).images[0]
    server.faults.drip_images_next(1, interval=0.05)
    started = time.monotonic()
    with (
        httpx.Client() as http,
        FluxSchnell(
            api_key=server.api_key,
            base_url=server.url,
            http_client=http,
            timeout=1.0,
            max_retries=0,
        ) as flux,
        pytest.raises(ImageDownloadError, match="took longer than its timeout"),
    ):
        flux.download(image)
    assert time.monotonic() - started < 1.5
