"""The reference server behaves like the API the spec describes, and its faults do what they say."""

from __future__ import annotations

import inspect
import io
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image
from starlette.applications import Starlette

from novita_flux import _spec
from novita_flux._request import field_schema
from novita_flux._schema import SchemaViolation, compile_schema, conform
from novita_flux.testing import Faults, ReferenceServer, _images, create_app
from novita_flux.testing._faults import MALFORMED_KINDS
from novita_flux.testing._server import AppOptions
from tests.support import printed

API = _spec.operation(_spec.GENERATE)
KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
IMAGE_TYPES: list[str] = _spec.resolve(_spec.document()["components"]["schemas"]["ImageType"])[
    "enum"
]
SMALLEST = field_schema("width")["minimum"]
LARGEST = field_schema("width")["maximum"]
INTEGER_FIELDS = [
    name
    for name, schema in _spec.request_schema(_spec.GENERATE)["properties"].items()
    if schema.get("type") == "integer"
]


class Clock:
    """A clock a test moves by hand, for link expiry and the per-minute window."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def request_body(**changes: Any) -> dict[str, Any]:
    return {
        **_spec.request_example(_spec.GENERATE),
        "width": SMALLEST,
        "height": SMALLEST,
        **changes,
    }


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(clock: Clock) -> Starlette:
    return create_app(api_key=KEY, clock=clock)


@pytest.fixture
def faults(app: Starlette) -> Faults:
    faults: Faults = app.state.faults
    return faults


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        yield client


async def generate(
    client: httpx.AsyncClient, body: object = None, headers: dict[str, Any] | None = None
) -> httpx.Response:
    payload = request_body() if body is None else body
    return await client.request(
        API.method, API.path, json=payload, headers=AUTH if headers is None else headers
    )


async def image_urls(client: httpx.AsyncClient, **changes: Any) -> list[str]:
    response = await generate(client, request_body(**changes))
    assert response.status_code == 200, response.text
    return [image["image_url"] for image in response.json()["images"]]


def assert_error(response: httpx.Response, reason: str) -> dict[str, Any]:
    """The response is the spec's envelope for reason, under the spec's status for it."""
    assert response.headers["content-type"] == "application/json"
    envelope: dict[str, Any] = conform(compile_schema(_spec.error_schema()), response.json())
    assert envelope["reason"] == reason
    assert response.status_code == envelope["code"] == _spec.known_reasons()[reason].status
    return envelope


def conforms_to_response_schema(body: object) -> bool:
    try:
        conform(compile_schema(_spec.response_schema(_spec.GENERATE, 200)), body)
    except SchemaViolation:
        return False
    return True


# --- Authentication -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_no_authorization_header_is_401_failed_to_auth(client: httpx.AsyncClient) -> None:
    assert_error(await generate(client, headers={}), "FAILED_TO_AUTH")


@pytest.mark.anyio
@pytest.mark.parametrize("header", ["Bearer ", "Bearer", "Basic dGVzdC1rZXk6", KEY])
async def test_a_header_without_a_bearer_key_is_400_missing_api_key(
    client: httpx.AsyncClient, header: str
) -> None:
    assert_error(await generate(client, headers={"Authorization": header}), "MISSING_API_KEY")


@pytest.mark.anyio
@pytest.mark.parametrize("key", ["wrong-key", KEY + "x", KEY[:-1], "tést"])
async def test_a_key_that_is_not_the_apps_is_403_invalid_api_key(
    client: httpx.AsyncClient, key: str
) -> None:
    headers = {"Authorization": f"Bearer {key}".encode()}
    assert_error(await generate(client, headers=headers), "INVALID_API_KEY")


@pytest.mark.anyio
async def test_authentication_is_checked_before_the_body(client: httpx.AsyncClient) -> None:
    assert_error(await generate(client, {"steps": -1}, headers={}), "FAILED_TO_AUTH")


# --- Validation ---------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("field", INTEGER_FIELDS)
async def test_an_integer_above_its_range_is_400_naming_field_value_and_range(
    client: httpx.AsyncClient, field: str
) -> None:
    low, high = field_schema(field)["minimum"], field_schema(field)["maximum"]
    envelope = assert_error(
        await generate(client, request_body(**{field: high + 1})), "INVALID_REQUEST_BODY"
    )
    assert envelope["metadata"]["field"] == field
    assert field in envelope["message"]
    assert str(high + 1) in envelope["message"]
    assert f"[{low}, {high}]" in envelope["message"]


@pytest.mark.anyio
async def test_a_prompt_longer_than_the_spec_allows_is_400(client: httpx.AsyncClient) -> None:
    too_long = "a" * (field_schema("prompt")["maxLength"] + 1)
    envelope = assert_error(
        await generate(client, request_body(prompt=too_long)), "INVALID_REQUEST_BODY"
    )
    assert envelope["metadata"]["field"] == "prompt"


@pytest.mark.anyio
@pytest.mark.parametrize(("field", "value"), [("width", "512"), ("seed", True), ("steps", 4.5)])
async def test_a_value_of_the_wrong_type_is_400(
    client: httpx.AsyncClient, field: str, value: object
) -> None:
    envelope = assert_error(
        await generate(client, request_body(**{field: value})), "INVALID_REQUEST_BODY"
    )
    assert envelope["metadata"]["field"] == field


@pytest.mark.anyio
async def test_an_unknown_field_is_rejected(client: httpx.AsyncClient) -> None:
    envelope = assert_error(
        await generate(client, request_body(response_image_format="png")), "INVALID_REQUEST_BODY"
    )
    assert envelope["metadata"]["field"] == "response_image_format"


@pytest.mark.anyio
@pytest.mark.parametrize("field", _spec.request_schema(_spec.GENERATE)["required"])
async def test_a_missing_required_field_is_rejected(client: httpx.AsyncClient, field: str) -> None:
    body = request_body()
    del body[field]
    envelope = assert_error(await generate(client, body), "INVALID_REQUEST_BODY")
    assert envelope["metadata"]["field"] == field


@pytest.mark.anyio
@pytest.mark.parametrize(
    "content", [b"{not json", b'{"seed": NaN}', b"[1, 2]", b'"prompt"', b"\xff\xfe", b""]
)
async def test_a_body_that_is_not_a_json_object_is_400(
    client: httpx.AsyncClient, content: bytes
) -> None:
    response = await client.request(
        API.method, API.path, content=content, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert assert_error(response, "INVALID_REQUEST_BODY")["metadata"]["field"] == "body"


@pytest.mark.anyio
async def test_a_body_not_sent_as_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.request(
        API.method,
        API.path,
        content=httpx.Request("POST", "/", json=request_body()).content,
        headers={**AUTH, "Content-Type": "text/plain"},
    )
    assert_error(response, "INVALID_REQUEST_BODY")


@pytest.mark.anyio
async def test_whole_number_floats_are_accepted_as_integers(client: httpx.AsyncClient) -> None:
    (url,) = await image_urls(client, width=float(SMALLEST + 32), seed=7.0, image_num=1.0)
    image = Image.open(io.BytesIO((await client.get(url)).content))
    assert image.size == (SMALLEST + 32, SMALLEST)


# --- Routing ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_an_unknown_path_is_404_api_not_found(client: httpx.AsyncClient) -> None:
    assert_error(await client.post("/v3/flux-1-dev", json={}, headers=AUTH), "API_NOT_FOUND")
    assert_error(await client.post(API.path + "/", json={}, headers=AUTH), "API_NOT_FOUND")


@pytest.mark.anyio
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"])
async def test_another_method_on_the_api_path_is_405_with_allow(
    client: httpx.AsyncClient, method: str
) -> None:
    response = await client.request(method, API.path, headers=AUTH)
    assert response.status_code == 405
    assert response.headers["allow"] == API.method
    assert response.json()["code"] == 405


# --- Success ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_valid_request_returns_the_spec_response(client: httpx.AsyncClient) -> None:
    response = await generate(client, request_body(image_num=3))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert conforms_to_response_schema(body)
    assert len(body["images"]) == 3
    assert str(uuid.UUID(body["task"]["task_id"])) == body["task"]["task_id"]
    default_type = field_schema("response_image_type")["default"]
    assert {image["image_type"] for image in body["images"]} == {default_type}
    assert {image["image_url_ttl"] for image in body["images"]} == {3600}


@pytest.mark.anyio
@pytest.mark.parametrize("image_type", IMAGE_TYPES)
async def test_images_decode_at_exactly_the_requested_size_and_format(
    client: httpx.AsyncClient, image_type: str
) -> None:
    size = (SMALLEST + 40, SMALLEST + 8)
    body = request_body(width=size[0], height=size[1], response_image_type=image_type)
    response = await generate(client, body)
    assert response.json()["images"][0]["image_type"] == image_type
    download = await client.get(response.json()["images"][0]["image_url"])
    assert download.status_code == 200
    assert download.headers["content-type"] == f"image/{image_type}"
    assert int(download.headers["content-length"]) == len(download.content)
    image = Image.open(io.BytesIO(download.content))
    assert (image.format, image.size) == (image_type.upper(), size)


@pytest.mark.anyio
async def test_the_same_request_gives_byte_identical_images(client: httpx.AsyncClient) -> None:
    (first,) = await image_urls(client, seed=11)
    (again,) = await image_urls(client, seed=11)
    assert first != again  # a new task, a new link ...
    assert (await client.get(first)).content == (await client.get(again)).content  # same image


@pytest.mark.anyio
@pytest.mark.parametrize(("field", "other"), [("seed", 12), ("prompt", "a dog"), ("steps", 5)])
async def test_a_different_parameter_gives_a_different_image(
    client: httpx.AsyncClient, field: str, other: object
) -> None:
    (first,) = await image_urls(client, seed=11, prompt="a cat", steps=4)
    (second,) = await image_urls(
        client, **{"seed": 11, "prompt": "a cat", "steps": 4, field: other}
    )
    assert (await client.get(first)).content != (await client.get(second)).content


@pytest.mark.anyio
async def test_the_images_of_one_call_differ(client: httpx.AsyncClient) -> None:
    urls = await image_urls(client, image_num=3)
    assert len({(await client.get(url)).content for url in urls}) == 3


@pytest.mark.anyio
async def test_images_are_rendered_when_fetched_not_when_generated(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered: list[object] = []
    original = _images.render
    monkeypatch.setattr(_images, "render", lambda link: rendered.append(link) or original(link))
    largest = field_schema("image_num")["maximum"]
    urls = await image_urls(client, width=LARGEST, height=LARGEST, image_num=largest)
    assert (len(urls), rendered) == (largest, [])
    await client.get(urls[0].replace(f"={LARGEST}&", f"={SMALLEST}&"))  # tampered: not rendered
    assert rendered == []


def test_the_largest_png_is_served_whole_and_weighs_what_a_real_one_does() -> None:
    # How fast it renders is `make bench`'s business, not a test's.
    with ReferenceServer() as server:
        response = httpx.post(
            server.url + API.path,
            json=request_body(width=LARGEST, height=LARGEST),
            headers=AUTH,
        )
        download = httpx.get(response.json()["images"][0]["image_url"])
    assert Image.open(io.BytesIO(download.content)).size == (LARGEST, LARGEST)
    assert int(download.headers["Content-Length"]) == len(download.content) > 1_000_000


# --- Image links --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_image_links_need_no_api_key(client: httpx.AsyncClient, faults: Faults) -> None:
    (url,) = await image_urls(client)
    assert (await client.get(url)).status_code == 200
    assert (faults.image_downloads, faults.image_requests_with_authorization) == (1, 0)


@pytest.mark.anyio
async def test_an_image_request_carrying_a_key_is_counted(
    client: httpx.AsyncClient, faults: Faults
) -> None:
    (url,) = await image_urls(client)
    assert (await client.get(url, headers=AUTH)).status_code == 200
    assert faults.image_requests_with_authorization == 1


@pytest.mark.anyio
async def test_a_link_is_valid_for_its_ttl_then_expires(
    client: httpx.AsyncClient, clock: Clock, faults: Faults
) -> None:
    (url,) = await image_urls(client)
    clock.now += 3600
    assert (await client.get(url)).status_code == 200
    clock.now += 1
    expired = await client.get(url)
    assert expired.status_code == 403
    assert "Request has expired" in expired.text
    assert (faults.image_requests, faults.image_downloads) == (2, 1)


@pytest.mark.anyio
async def test_the_ttl_is_configurable(clock: Clock) -> None:
    app = create_app(image_url_ttl=5, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
        response = await generate(c)
        assert response.json()["images"][0]["image_url_ttl"] == 5
        clock.now += 6
        assert (await c.get(response.json()["images"][0]["image_url"])).status_code == 403


def test_a_negative_ttl_is_refused() -> None:
    with pytest.raises(ValueError, match="image_url_ttl"):
        create_app(image_url_ttl=-1)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "tamper",
    [
        lambda url: url.replace("seed=", "seed=1"),
        lambda url: url.replace("signature=", "signature=0"),
        lambda url: url.split("&signature=")[0],
        lambda url: url.replace("/0.png", "/1.png"),
        lambda url: url + "&signature=00",
    ],
)
async def test_a_tampered_link_is_403(
    client: httpx.AsyncClient, tamper: Callable[[str], str]
) -> None:
    (url,) = await image_urls(client)
    response = await client.get(tamper(url))
    assert response.status_code == 403
    assert "SignatureDoesNotMatch" in response.text


@pytest.mark.anyio
async def test_links_of_one_app_are_not_valid_on_another(client: httpx.AsyncClient) -> None:
    (url,) = await image_urls(client)
    other = create_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=other)) as stranger:
        assert (await stranger.get(url)).status_code == 403


@pytest.mark.anyio
async def test_image_links_point_at_the_configured_image_base_url() -> None:
    app = create_app(image_base_url="https://images.example/")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
        (image,) = (await generate(c)).json()["images"]
    assert image["image_url"].startswith("https://images.example/images/")


# --- Faults -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_rate_limit_next_answers_429_with_retry_after_then_recovers(
    client: httpx.AsyncClient, faults: Faults
) -> None:
    faults.rate_limit_next(2, retry_after=3)
    for _ in range(2):
        limited = await generate(client)
        assert_error(limited, "RATE_LIMIT_EXCEEDED")
        assert limited.headers["retry-after"] == "3"
    assert (await generate(client)).status_code == 200
    assert faults.api_requests == 3


@pytest.mark.anyio
async def test_rate_limit_next_can_omit_retry_after(
    client: httpx.AsyncClient, faults: Faults
) -> None:
    faults.rate_limit_next(retry_after=None)
    assert "retry-after" not in (await generate(client)).headers


@pytest.mark.anyio
async def test_fail_next_answers_500_task_failed_with_a_task_id(
    client: httpx.AsyncClient, faults: Faults
) -> None:
    faults.fail_next()
    envelope = assert_error(await generate(client), "TASK_FAILED")
    uuid.UUID(envelope["metadata"]["task_id"])


@pytest.mark.anyio
async def test_fail_next_answers_any_known_reason_with_its_spec_status(
    client: httpx.AsyncClient, faults: Faults
) -> None:
    faults.fail_next(reason="SERVICE_NOT_AVAILABLE")
    faults.fail_next(reason="BILLING_BALANCE_NOT_ENOUGH")
    assert_error(await generate(client), "SERVICE_NOT_AVAILABLE")
    assert_error(await generate(client), "BILLING_BALANCE_NOT_ENOUGH")


@pytest.mark.anyio
async def test_fail_next_with_an_unknown_reason_uses_the_given_status(
    client: httpx.AsyncClient, faults: Faults
) -> None:
    with pytest.raises(ValueError, match="status"):
        faults.fail_next(reason="SOMETHING_NEW")
    faults.fail_next(reason="SOMETHING_NEW", status=502)
    response = await generate(client)
    assert (response.status_code, response.json()["reason"]) == (502, "SOMETHING_NEW")


@pytest.mark.anyio
async def test_queued_faults_are_served_in_order_to_authenticated_valid_requests(
    client: httpx.AsyncClient, faults: Faults
) -> None:
    faults.rate_limit_next()
    faults.fail_next(reason="SERVICE_NOT_AVAILABLE")
    assert (await generate(client, headers={})).status_code == 401
    assert (await generate(client, request_body(steps=0))).status_code == 400
    assert faults.pending == 2
    statuses = [(await generate(client)).status_code for _ in range(3)]
    assert statuses == [429, 503, 200]


@pytest.mark.anyio
@pytest.mark.parametrize("kind", MALFORMED_KINDS)
async def test_malform_next_answers_200_with_a_body_that_breaks_the_contract(
    client: httpx.AsyncClient, faults: Faults, kind: Any
) -> None:
    faults.malform_next(kind=kind)
    response = await generate(client)
    assert response.status_code == 200
    try:
        body = response.json()
    except ValueError:
        body = None
    assert body is None or not conforms_to_response_schema(body)
    assert conforms_to_response_schema((await generate(client)).json())


def test_malform_next_refuses_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match="not_json"):
        Faults().malform_next(kind="garbled")  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_latency_delays_api_requests(client: httpx.AsyncClient, faults: Faults) -> None:
    faults.latency = 0.05
    started = time.perf_counter()
    await generate(client)
    assert time.perf_counter() - started >= 0.05


@pytest.mark.anyio
async def test_images_per_minute_is_a_rolling_window_over_image_num(clock: Clock) -> None:
    app = create_app(images_per_minute=3, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
        assert (await generate(c, request_body(image_num=2))).status_code == 200
        clock.now += 20
        assert (await generate(c, request_body(image_num=1))).status_code == 200
        clock.now += 10
        limited = await generate(c, request_body(image_num=1))
        assert_error(limited, "RATE_LIMIT_EXCEEDED")
        assert limited.headers["retry-after"] == "30"  # when the first two images leave
        clock.now += 30
        assert (await generate(c, request_body(image_num=2))).status_code == 200


@pytest.mark.anyio
async def test_more_images_than_the_limit_in_one_call_are_refused(clock: Clock) -> None:
    app = create_app(images_per_minute=2, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
        limited = await generate(c, request_body(image_num=3))
    assert_error(limited, "RATE_LIMIT_EXCEEDED")
    assert limited.headers["retry-after"] == "60"


@pytest.mark.anyio
async def test_there_is_no_image_limit_by_default(client: httpx.AsyncClient) -> None:
    most = field_schema("image_num")["maximum"]
    for _ in range(3):
        assert (await generate(client, request_body(image_num=most))).status_code == 200


@pytest.mark.anyio
async def test_reset_forgets_faults_and_counters_and_restores_settings(
    client: httpx.AsyncClient, faults: Faults
) -> None:
    faults.fail_next(3)
    faults.images_per_minute = 1
    await generate(client)
    faults.latency = 5.0
    faults.reset()
    assert (faults.pending, faults.api_requests, faults.latency) == (0, 0, 0.0)
    assert faults.images_per_minute is None
    assert (await generate(client)).status_code == 200


def test_faults_refuse_settings_that_mean_nothing() -> None:
    faults = Faults()
    for bad in (lambda: faults.fail_next(0), lambda: faults.rate_limit_next(-1)):
        with pytest.raises(ValueError, match="n must be"):
            bad()
    with pytest.raises(ValueError, match="latency"):
        faults.latency = -1
    with pytest.raises(ValueError, match="images_per_minute"):
        faults.images_per_minute = 0


# --- ReferenceServer over real HTTP -------------------------------------------------------


def test_reference_server_serves_api_and_images_on_different_origins() -> None:
    with ReferenceServer(api_key="k-123", image_url_ttl=60) as server:
        assert urlsplit(server.url).netloc != urlsplit(server.image_base_url).netloc
        with httpx.Client(base_url=server.url) as api:
            response = api.post(
                API.path, json=request_body(), headers={"Authorization": "Bearer k-123"}
            )
            assert response.status_code == 200
            (image,) = response.json()["images"]
            assert image["image_url"].startswith(server.image_base_url + "/images/")
            assert api.post(API.path, json=request_body(), headers=AUTH).status_code == 403
        download = httpx.get(image["image_url"])
        assert Image.open(io.BytesIO(download.content)).size == (SMALLEST, SMALLEST)
        assert (server.faults.api_requests, server.faults.image_downloads) == (2, 1)
        assert server.faults.image_requests_with_authorization == 0


def test_reference_server_start_and_stop_without_with() -> None:
    server = ReferenceServer()
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.url
    server.start()
    try:
        url = server.url
        server.faults.fail_next(reason="SERVICE_NOT_AVAILABLE")
        assert httpx.post(url + API.path, json=request_body(), headers=AUTH).status_code == 503
    finally:
        server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.post(url + API.path, json=request_body(), headers=AUTH)
    server.stop()  # a second stop does nothing


def test_reference_server_options_are_create_apps() -> None:
    keywords = set(inspect.signature(create_app).parameters) - {"api_key"}
    assert keywords == set(AppOptions.__annotations__)


def test_importing_novita_flux_does_not_import_the_servers_dependencies() -> None:
    code = (
        "import sys, novita_flux, novita_flux._request, novita_flux._errors\n"
        "print(sorted({'starlette', 'uvicorn', 'PIL'} & {m.split('.')[0] for m in sys.modules}))"
    )
    assert printed(code) == "[]"
