"""The overlay client over respx: what it sends, what it raises, when it retries."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest
import respx

from novita_flux import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AsyncFluxSchnell,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    FluxSchnell,
    ImageDownloadError,
    ImageExpiredError,
    InternalServerError,
    MissingAPIKeyError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseValidationError,
    ValidationError,
    estimate_cost,
)
from novita_flux._request import field_schema
from tests.support import (
    API_URL,
    KEY,
    MAGIC,
    Sleeps,
    error_body,
    generation_of,
    image_url,
    success_body,
)


def client(**options: object) -> FluxSchnell:
    return FluxSchnell(api_key=KEY, **options)  # type: ignore[arg-type]


def sent_json(route: respx.Route) -> dict:
    return json.loads(route.calls.last.request.content)


# --- what is sent -------------------------------------------------------------------------------


def test_generate_sends_the_body_and_bearer_key_and_returns_the_generation() -> None:
    with respx.mock:
        route = respx.post(API_URL).respond(200, json=success_body(image_num=2))
        generation = client().generate("a tiger eye", width=512, height=768, seed=7, image_num=2)
    request = route.calls.last.request
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.headers["Content-Type"] == "application/json"
    assert sent_json(route) == {
        "prompt": "a tiger eye",
        "seed": 7,
        "steps": 4,
        "width": 512,
        "height": 768,
        "image_num": 2,
        "response_image_type": "png",
    }
    assert generation.request == sent_json(route)
    assert generation.task_id == "task-1"
    assert [image.url for image in generation.images] == [image_url(0), image_url(1)]
    assert generation.cost == estimate_cost(512, 768, 4, 2)


def test_seed_none_sends_a_random_seed_from_the_spec_range_and_reports_it() -> None:
    seed_range = field_schema("seed")
    with respx.mock:
        route = respx.post(API_URL).respond(200, json=success_body())
        seeds = {client().generate("x", seed=None).seed for _ in range(5)}
    assert all(seed_range["minimum"] <= seed <= seed_range["maximum"] for seed in seeds)
    assert sent_json(route)["seed"] in seeds
    assert len(seeds) > 1


def test_whole_number_floats_are_sent_as_integers() -> None:
    with respx.mock:
        route = respx.post(API_URL).respond(200, json=success_body())
        client().generate("x", width=512.0, seed=3)  # type: ignore[arg-type]
    assert sent_json(route)["width"] == 512
    assert isinstance(sent_json(route)["width"], int)


@pytest.mark.parametrize(
    ("arguments", "field", "fragment"),
    [
        ({"width": 63}, "width", "[64, 2048]"),
        ({"height": 2049}, "height", "[64, 2048]"),
        ({"steps": 0}, "steps", "[1, 100]"),
        ({"image_num": 9}, "image_num", "[1, 8]"),
        ({"seed": -1}, "seed", "[0, 4294967295]"),
        ({"seed": True}, "seed", "an integer"),
        ({"steps": 4.5}, "steps", "an integer"),
        ({"width": "512"}, "width", "an integer"),
        ({"prompt": ""}, "prompt", "1 to 1024 characters"),
        ({"prompt": "x" * 1025}, "prompt", "1 to 1024 characters"),
        ({"prompt": None}, "prompt", "a string"),
        ({"response_image_type": "gif"}, "response_image_type", "'png', 'webp', 'jpeg'"),
    ],
)
def test_bad_arguments_raise_validation_error_naming_field_value_and_range(
    arguments: dict, field: str, fragment: str
) -> None:
    call = {"prompt": "a tiger eye", **arguments}
    with respx.mock(assert_all_called=False) as router:
        route = router.post(API_URL).respond(200, json=success_body())
        with pytest.raises(ValidationError) as raised:
            client().generate(**call)
    assert route.call_count == 0
    error = raised.value
    assert isinstance(error, ValueError)
    assert error.field == field
    assert error.value == call[field] or field == "prompt"
    assert field in str(error)
    assert fragment in str(error)


def test_max_cost_refuses_an_expensive_request_before_sending() -> None:
    with respx.mock(assert_all_called=False) as router:
        route = router.post(API_URL).respond(200, json=success_body())
        with pytest.raises(BudgetExceededError) as raised:
            client().generate("x", width=1024, height=1024, steps=4, max_cost=0.0029)
        client().generate("x", width=1024, height=1024, steps=4, max_cost="0.003")
    assert route.call_count == 1
    assert "0.003" in str(raised.value)


# --- how answers are mapped ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason", "expected"),
    [
        (400, "INVALID_REQUEST_BODY", BadRequestError),
        (400, "ILLEGAL_PROMPT", BadRequestError),
        (400, "MISSING_API_KEY", AuthenticationError),
        (401, "FAILED_TO_AUTH", AuthenticationError),
        (403, "INVALID_API_KEY", AuthenticationError),
        (403, "API_NOT_ALLOWED", PermissionDeniedError),
        (404, "API_NOT_FOUND", NotFoundError),
        (429, "RATE_LIMIT_EXCEEDED", RateLimitError),
        (500, "TASK_FAILED", InternalServerError),
        (503, "SERVICE_NOT_AVAILABLE", InternalServerError),
        (418, "SOMETHING_NEW", APIStatusError),
        (401, "SOMETHING_NEW", AuthenticationError),
        (502, "SOMETHING_NEW", InternalServerError),
    ],
)
def test_error_status_and_reason_map_to_the_exception_keeping_the_envelope(
    status: int, reason: str, expected: type[APIStatusError]
) -> None:
    body = error_body(status, reason, "the message", task_id="task-9")
    with respx.mock:
        respx.post(API_URL).respond(status, json=body)
        with pytest.raises(APIStatusError) as raised:
            client(max_retries=0).generate("x")
    error = raised.value
    assert type(error) is expected
    assert (error.status_code, error.code, error.reason) == (status, status, reason)
    assert (error.message, error.task_id, error.body) == ("the message", "task-9", body)
    assert error.response.status_code == status
    assert reason in str(error)
    assert "task-9" in str(error)


@pytest.mark.parametrize(
    ("status", "expected"),
    [(502, InternalServerError), (403, PermissionDeniedError), (400, BadRequestError)],
)
def test_a_non_json_error_body_still_gives_the_status_error(
    status: int, expected: type[APIStatusError]
) -> None:
    with respx.mock:
        respx.post(API_URL).respond(status, text="<html>Bad Gateway</html>")
        with pytest.raises(expected) as raised:
            client(max_retries=0).generate("x")
    assert raised.value.reason is None
    assert raised.value.body == "<html>Bad Gateway</html>"
    assert "Bad Gateway" in str(raised.value)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"not json", "not JSON"),
        (b'{"images": [', "not JSON"),
        (json.dumps({"images": []}).encode(), "task"),
        (json.dumps(success_body() | {"task": {}}).encode(), "task_id"),
        (json.dumps(success_body(image_type="gif")).encode(), "image_type"),
        (json.dumps(success_body(ttl="soon")).encode(), "image_url_ttl"),  # type: ignore[arg-type]
        (json.dumps([1, 2]).encode(), "an object"),
    ],
)
def test_a_2xx_body_that_breaks_the_contract_raises_response_validation_error(
    content: bytes, problem: str
) -> None:
    with respx.mock:
        respx.post(API_URL).respond(200, content=content)
        with pytest.raises(ResponseValidationError) as raised:
            client().generate("x")
    assert problem in str(raised.value)
    assert "likely billed" in str(raised.value)
    assert raised.value.possibly_billed
    try:
        parsed = json.loads(content)
    except ValueError:
        assert raised.value.body == content.decode()  # not JSON: the text, as it came
    else:
        assert raised.value.body == parsed  # JSON: the whole parsed body


# --- retries ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason", "calls"),
    [
        (429, "RATE_LIMIT_EXCEEDED", 3),  # refused before any work: retried
        (503, "SERVICE_NOT_AVAILABLE", 3),
        (500, "CREATE_TASK_FAILED", 3),  # the task was never created
        (408, "X", 3),
        (429, "X", 3),
        (400, "X", 1),
        (500, "TASK_FAILED", 1),  # the task ran: a retry could pay twice
        (500, "BILLING_FAILED", 1),
        (500, "X", 1),
        (503, "X", 1),  # a 503 without Novita's reason may come from behind the gateway
    ],
)
def test_retry_count_follows_the_policy(
    status: int, reason: str, calls: int, sleeps: Sleeps
) -> None:
    with respx.mock:
        route = respx.post(API_URL).respond(status, json=error_body(status, reason))
        with pytest.raises(APIStatusError):
            client().generate("x")
    assert route.call_count == calls
    assert len(sleeps) == calls - 1


def test_a_retry_that_succeeds_returns_the_generation(sleeps: Sleeps) -> None:
    with respx.mock:
        route = respx.post(API_URL)
        route.side_effect = [
            httpx.Response(429, json=error_body(429, "RATE_LIMIT_EXCEEDED")),
            httpx.Response(503, json=error_body(503, "SERVICE_NOT_AVAILABLE")),
            httpx.Response(200, json=success_body()),
        ]
        assert client().generate("x").task_id == "task-1"
    assert route.call_count == 3


def test_backoff_grows_exponentially_with_jitter(sleeps: Sleeps) -> None:
    with respx.mock:
        respx.post(API_URL).respond(503, json=error_body(503, "SERVICE_NOT_AVAILABLE"))
        with pytest.raises(InternalServerError):
            client(max_retries=3).generate("x")
    nominal = [0.5, 1.0, 2.0]  # 0.5 s doubling, each cut by up to a quarter for jitter
    assert len(sleeps) == len(nominal)
    assert all(0.75 * top <= delay <= top for top, delay in zip(nominal, sleeps, strict=True))


@pytest.mark.parametrize("header", ["3", "3.0", "HTTP-DATE"])
def test_retry_after_in_seconds_or_as_an_http_date_is_honoured(header: str, sleeps: Sleeps) -> None:
    if header == "HTTP-DATE":
        header = format_datetime(datetime.now(UTC) + timedelta(seconds=4), usegmt=True)
    with respx.mock:
        route = respx.post(API_URL)
        route.side_effect = [
            httpx.Response(429, headers={"Retry-After": header}, json=error_body(429, "R")),
            httpx.Response(200, json=success_body()),
        ]
        client().generate("x")
    assert len(sleeps) == 1
    assert 2 <= sleeps[0] <= 4


def test_a_retry_after_beyond_the_cap_is_raised_not_waited_for(sleeps: Sleeps) -> None:
    with respx.mock:
        route = respx.post(API_URL).respond(
            429, headers={"Retry-After": "3600"}, json=error_body(429, "RATE_LIMIT_EXCEEDED")
        )
        with pytest.raises(RateLimitError) as raised:
            client().generate("x")
    assert route.call_count == 1
    assert sleeps == []
    assert raised.value.retry_after == 3600


def test_connection_errors_are_retried(sleeps: Sleeps) -> None:
    with respx.mock:
        route = respx.post(API_URL).mock(side_effect=httpx.ConnectError("refused"))
        with pytest.raises(APIConnectionError) as raised:
            client().generate("x")
    assert route.call_count == 3
    assert not isinstance(raised.value, APITimeoutError)
    assert isinstance(raised.value.__cause__, httpx.ConnectError)


def test_a_read_timeout_is_raised_at_once_because_the_generation_may_be_billed(
    sleeps: Sleeps,
) -> None:
    with respx.mock:
        route = respx.post(API_URL).mock(side_effect=httpx.ReadTimeout("slow"))
        with pytest.raises(APITimeoutError) as raised:
            client().generate("x")
    assert route.call_count == 1
    assert "billed" in str(raised.value)


def test_max_retries_and_timeout_can_be_set_per_call_and_per_client(sleeps: Sleeps) -> None:
    with respx.mock:
        route = respx.post(API_URL).respond(503, json=error_body(503, "SERVICE_NOT_AVAILABLE"))
        base = client(max_retries=5, timeout=30)
        with pytest.raises(InternalServerError):
            base.generate("x", max_retries=1, timeout=2.5)
        assert route.call_count == 2
        assert route.calls.last.request.extensions["timeout"]["read"] == 2.5
        quick = base.with_options(max_retries=0, timeout=1.0)
        with pytest.raises(InternalServerError):
            quick.generate("x")
        assert route.call_count == 3
        assert route.calls.last.request.extensions["timeout"]["read"] == 1.0
    assert (base.max_retries, base.timeout.read) == (5, 30)


# --- configuration, secrets, lifecycle ---------------------------------------------------------


def test_missing_key_raises_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOVITA_API_KEY", raising=False)
    with pytest.raises(MissingAPIKeyError, match="NOVITA_API_KEY"):
        FluxSchnell()


def test_key_and_base_url_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOVITA_API_KEY", KEY)
    monkeypatch.setenv("NOVITA_BASE_URL", "http://localhost:9999/")
    with respx.mock:
        route = respx.post("http://localhost:9999/v3beta/flux-1-schnell").respond(
            200, json=success_body()
        )
        FluxSchnell().generate("x")
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize(
    ("option", "value"),
    [("timeout", -1), ("timeout", "fast"), ("max_retries", -1), ("max_retries", True)],
)
def test_bad_client_options_raise_validation_error(option: str, value: object) -> None:
    with pytest.raises(ValidationError, match=option):
        client(**{option: value})
    for base_url in ("api.novita.ai", "http://[::1", 42):
        with pytest.raises(ValidationError, match="base_url"):
            client(base_url=base_url)
    with pytest.raises(ValidationError, match="api_key") as raised:
        FluxSchnell(api_key=KEY.encode())  # type: ignore[arg-type]
    assert KEY not in str(raised.value)


def test_the_key_never_appears_in_reprs_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="novita_flux")
    flux = client()
    with respx.mock:
        respx.post(API_URL).respond(401, json=error_body(401, "FAILED_TO_AUTH"))
        with pytest.raises(AuthenticationError) as raised:
            flux.generate("x")
    texts = [repr(flux), repr(flux.with_options(max_retries=1)), str(raised.value)]
    texts += [repr(raised.value), repr(raised.value.response.request.headers), caplog.text]
    assert caplog.text  # the exchange was logged ...
    assert all(KEY not in text for text in texts)  # ... without the key


def test_an_injected_http_client_keeps_auth_and_stays_open() -> None:
    http = httpx.Client(headers={"X-Trace": "on"})
    with respx.mock:
        route = respx.post(API_URL).respond(200, json=success_body())
        with FluxSchnell(api_key=KEY, http_client=http) as flux:
            flux.generate("x")
    request = route.calls.last.request
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.headers["X-Trace"] == "on"
    assert not http.is_closed


def test_a_client_closes_what_it_opened() -> None:
    with client() as flux:
        pass
    assert flux._http.is_closed


# --- images -------------------------------------------------------------------------------------


def test_download_never_sends_the_key_even_through_an_injected_client() -> None:
    http = httpx.Client(headers={"Authorization": "Bearer user-default"})
    flux = FluxSchnell(api_key=KEY, http_client=http)
    with respx.mock:
        route = respx.get(image_url()).respond(200, content=MAGIC["png"])
        assert flux.download(generation_of("png").images[0]) == MAGIC["png"]
    assert "Authorization" not in route.calls.last.request.headers


@pytest.mark.parametrize("image_type", ["png", "jpeg", "webp"])
def test_download_accepts_each_type_by_its_signature(image_type: str) -> None:
    with respx.mock:
        respx.get(image_url(0, image_type)).respond(200, content=MAGIC[image_type])
        data = client().download(generation_of(image_type).images[0])
    assert data == MAGIC[image_type]


def test_download_refuses_bytes_that_are_not_an_image() -> None:
    with respx.mock:
        respx.get(image_url()).respond(200, content=b"<html>Access Denied</html>")
        with pytest.raises(ImageDownloadError, match=r"should be a PNG image but .* else"):
            client().download(generation_of("png").images[0])


def test_an_image_of_another_type_than_promised_is_kept_as_what_it_is(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with respx.mock:
        respx.get(image_url()).respond(200, content=MAGIC["jpeg"])
        assert client().download(generation_of("png").images[0]) == MAGIC["jpeg"]
        (path,) = client().save(generation_of("png"), tmp_path)
    assert path.suffix == ".jpg"  # named for what it is: it was paid for
    assert path.read_bytes() == MAGIC["jpeg"]
    assert "promised as PNG but is a JPEG" in caplog.text


def test_download_refuses_an_image_over_the_size_cap() -> None:
    with respx.mock:
        respx.get(image_url()).respond(200, content=MAGIC["png"] + b"\x00" * 100)
        with pytest.raises(ImageDownloadError, match="limit"):
            client().download(generation_of("png").images[0], max_bytes=64)


def test_an_expired_image_is_refused_before_any_request() -> None:
    with respx.mock(assert_all_called=False) as router:
        route = router.get(image_url()).respond(200, content=MAGIC["png"])
        with pytest.raises(ImageExpiredError, match="expired"):
            client().download(generation_of("png", ttl=-1).images[0])
    assert route.call_count == 0


def test_save_writes_each_image_atomically_and_never_overwrites_another(tmp_path: Path) -> None:
    generation = generation_of("png", "webp")
    clash = tmp_path / "x_1024x1024_s4_seed1_0.png"
    clash.write_bytes(b"someone else's image")
    with respx.mock:
        respx.get(image_url(0, "png")).respond(200, content=MAGIC["png"])
        respx.get(image_url(1, "webp")).respond(200, content=MAGIC["webp"])
        first = client().save(generation, tmp_path, metadata=True)
        again = client().save(generation, tmp_path)
    assert [p.name for p in first] == [
        "x_1024x1024_s4_seed1_0-2.png",
        "x_1024x1024_s4_seed1_1.webp",
    ]
    assert again == first  # the same image saved twice is found, not duplicated
    assert clash.read_bytes() == b"someone else's image"
    assert first[0].read_bytes() == MAGIC["png"]
    assert json.loads(Path(f"{first[1]}.json").read_text())["index"] == 1
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_a_failed_save_leaves_no_partial_file(tmp_path: Path, sleeps: Sleeps) -> None:
    with respx.mock:
        respx.get(image_url()).respond(200, content=b"<html>not an image</html>")
        with pytest.raises(ImageDownloadError):
            client().save(generation_of("png"), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_download_is_retried_on_a_server_error(sleeps: Sleeps) -> None:
    with respx.mock:
        route = respx.get(image_url())
        route.side_effect = [httpx.Response(503), httpx.Response(200, content=MAGIC["png"])]
        assert client().download(generation_of("png").images[0]) == MAGIC["png"]
    assert len(sleeps) == 1


# --- the async client mirrors the sync one ------------------------------------------------------


@pytest.mark.anyio
async def test_async_generate_retries_then_returns(sleeps: Sleeps) -> None:
    with respx.mock:
        route = respx.post(API_URL)
        route.side_effect = [
            httpx.Response(503, json=error_body(503, "SERVICE_NOT_AVAILABLE")),
            httpx.Response(200, json=success_body(image_num=3)),
        ]
        async with AsyncFluxSchnell(api_key=KEY) as flux:
            generation = await flux.generate("x", image_num=3, seed=11)
    assert route.call_count == 2
    assert len(generation.images) == 3
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {KEY}"
    assert flux._http.is_closed


@pytest.mark.anyio
async def test_async_errors_and_validation_match_the_sync_client() -> None:
    async with AsyncFluxSchnell(api_key=KEY, max_retries=0) as flux:
        with respx.mock(assert_all_called=False) as router:
            route = router.post(API_URL).respond(403, json=error_body(403, "INVALID_API_KEY"))
            with pytest.raises(ValidationError, match="steps"):
                await flux.generate("x", steps=101)
            assert route.call_count == 0
            with pytest.raises(AuthenticationError):
                await flux.generate("x")


@pytest.mark.anyio
async def test_async_save_streams_without_the_key(tmp_path: Path) -> None:
    async with AsyncFluxSchnell(api_key=KEY) as flux:
        with respx.mock:
            route = respx.get(image_url()).respond(200, content=MAGIC["png"])
            (path,) = await flux.save(generation_of("png"), tmp_path)
            assert await flux.download(generation_of("png").images[0]) == MAGIC["png"]
    assert path.read_bytes() == MAGIC["png"]
    assert all("Authorization" not in call.request.headers for call in route.calls)
