"""The generated package as the public low-level client (README, "How it is built").

`novita_flux_api` is what openapi-python-client makes of the spec: attrs models and one module per
operation, sending exactly what it is given and checking nothing. It ships because it is a
documented way to call the API (docs/library/low-level.md): these tests hold it to that against
the reference server, over every module the generator writes. The overlay uses its public names
only (tests/package/test_private_access.py), and sends what the generated request model would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given

from novita_flux import FluxSchnell
from novita_flux._request import prepare_request
from novita_flux.testing import ReferenceServer
from novita_flux_api import AuthenticatedClient, Client
from novita_flux_api.api.default import balance_detail, flux_1_schnell
from novita_flux_api.errors import UnexpectedStatus
from novita_flux_api.models import (
    BalanceDetail,
    ErrorResponse,
    Flux1SchnellRequest,
    Flux1SchnellResponse,
    ImageType,
)
from novita_flux_api.types import Response
from tests import strategies

KEY = "low-level-key"


@pytest.fixture(scope="module")
def server() -> Iterator[ReferenceServer]:
    with ReferenceServer(api_key=KEY, balance="1") as running:
        yield running


@pytest.fixture
def client(server: ReferenceServer) -> Iterator[AuthenticatedClient]:
    server.faults.reset()
    with AuthenticatedClient(base_url=server.url, token=KEY) as low_level:
        yield low_level


def tiger(**fields: Any) -> Flux1SchnellRequest:
    return Flux1SchnellRequest(
        prompt="a tiger eye",
        width=64,
        height=64,
        seed=2024,
        steps=4,
        image_num=fields.pop("image_num", 2),
        response_image_type=ImageType.PNG,
        **fields,
    )


def test_a_generation_is_read_into_the_generated_models(
    client: AuthenticatedClient, server: ReferenceServer
) -> None:
    answer = flux_1_schnell.sync_detailed(client=client, body=tiger())
    assert answer.status_code == 200
    parsed = answer.parsed
    assert isinstance(parsed, Flux1SchnellResponse)
    assert parsed.task.task_id == server.faults.billed[0][0]
    assert [image.image_type for image in parsed.images] == [ImageType.PNG, ImageType.PNG]
    image = httpx.get(parsed.images[0].image_url)  # a bare GET, as the docs say
    assert image.content.startswith(b"\x89PNG")
    assert server.faults.image_requests_with_authorization == 0


def test_the_low_level_client_carries_its_key_to_every_host(
    client: AuthenticatedClient, server: ReferenceServer
) -> None:
    """Why the docs fetch images with a bare httpx client: the generated client's headers hold
    the key for every request it sends, a storage host's included (the overlay adds it for the
    API's origin only)."""
    parsed = flux_1_schnell.sync(client=client, body=tiger(image_num=1))
    assert isinstance(parsed, Flux1SchnellResponse)
    client.get_httpx_client().get(parsed.images[0].image_url)
    assert server.faults.image_requests_with_authorization == 1


def test_an_error_answer_is_read_as_the_spec_envelope(client: AuthenticatedClient) -> None:
    body = tiger()
    body.width = 63  # the generated model checks nothing: the server refuses it
    parsed = flux_1_schnell.sync(client=client, body=body)
    assert isinstance(parsed, ErrorResponse)
    assert parsed.code == 400
    assert parsed.reason == "INVALID_REQUEST_BODY"


def test_a_status_the_spec_does_not_list_is_raised_on_request(
    client: AuthenticatedClient, server: ReferenceServer
) -> None:
    server.faults.gateway_error_next(2, status=502)
    assert flux_1_schnell.sync(client=client, body=tiger()) is None
    strict = AuthenticatedClient(base_url=server.url, token=KEY, raise_on_unexpected_status=True)
    with strict, pytest.raises(UnexpectedStatus) as raised:
        flux_1_schnell.sync(client=strict, body=tiger())
    assert raised.value.status_code == 502


def test_the_balance_is_read_as_its_strings(
    client: AuthenticatedClient, server: ReferenceServer
) -> None:
    server.account.reset(balance="1")
    balance = balance_detail.sync(client=client)
    assert isinstance(balance, BalanceDetail)
    assert balance.available_balance == "10000"  # units of 1/10000 USD: $1.00
    assert balance.to_dict()["availableBalance"] == "10000"


def test_a_key_refused_and_no_key_at_all(server: ReferenceServer) -> None:
    with AuthenticatedClient(base_url=server.url, token="not-the-key") as wrong:
        refused = balance_detail.sync_detailed(client=wrong)
    assert isinstance(refused.parsed, ErrorResponse)
    assert refused.parsed.reason == "INVALID_API_KEY"
    with Client(base_url=server.url) as anonymous:
        answer = anonymous.get_httpx_client().get("/openapi/v1/billing/balance/detail")
    assert answer.status_code == 401


def test_the_async_functions_answer_as_the_sync_ones(server: ReferenceServer) -> None:
    async def both() -> tuple[Response[Any], BalanceDetail | ErrorResponse | None]:
        async with AuthenticatedClient(base_url=server.url, token=KEY) as low_level:
            generated = await flux_1_schnell.asyncio_detailed(client=low_level, body=tiger())
            balance = await balance_detail.asyncio(client=low_level)
            assert await flux_1_schnell.asyncio(client=low_level, body=tiger()) is not None
            assert (await balance_detail.asyncio_detailed(client=low_level)).status_code == 200
            return generated, balance

    generated, balance = asyncio.run(both())
    assert isinstance(generated.parsed, Flux1SchnellResponse)
    assert isinstance(balance, BalanceDetail)


def test_a_field_the_spec_does_not_name_is_kept() -> None:
    """The observed profile answers as the real API family does (a TTL as a string, an image's
    NSFW verdict): the generated models keep what they do not name, and write it back."""
    with (
        ReferenceServer(api_key=KEY, profile="observed") as observed,
        AuthenticatedClient(base_url=observed.url, token=KEY) as low_level,
    ):
        parsed = flux_1_schnell.sync(client=low_level, body=tiger(image_num=1))
    assert isinstance(parsed, Flux1SchnellResponse)
    assert "nsfw_detection_result" in parsed.images[0].additional_properties
    dumped = parsed.to_dict()
    assert "nsfw_detection_result" in dumped["images"][0]
    assert Flux1SchnellResponse.from_dict(dumped).to_dict() == dumped


@given(strategies.valid_requests())
def test_the_overlay_sends_what_the_generated_request_model_would(fields: dict[str, Any]) -> None:
    """The overlay builds its body itself (the model would only cast it back): this is what
    keeps the two one contract, for every request the spec allows."""
    body, _ = prepare_request(fields)
    serialised = Flux1SchnellRequest.from_dict(body).to_dict()
    assert serialised == body
    assert list(serialised) == list(body)  # the same bytes on the wire, field for field


def test_the_overlay_and_the_low_level_client_send_the_same_request(
    client: AuthenticatedClient, server: ReferenceServer
) -> None:
    flux_1_schnell.sync(client=client, body=tiger())
    with FluxSchnell(api_key=KEY, base_url=server.url) as flux:
        flux.generate("a tiger eye", width=64, height=64, seed=2024, image_num=2)
    low, high = server.faults.arrived
    assert low == high


BALANCE_PATH = "/openapi/v1/billing/balance/detail"


@pytest.mark.parametrize("kind", [Client, AuthenticatedClient])
def test_every_setting_of_the_generated_clients_reaches_the_request(
    kind: type[Client] | type[AuthenticatedClient], server: ReferenceServer
) -> None:
    """The generated clients' own settings (headers, cookies, timeout) reach the request their
    httpx client sends, sync and async, and an httpx client of your own is the one used."""
    token = {"token": KEY} if kind is AuthenticatedClient else {}
    seen: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        seen.append(request)

    def made(hook: Any) -> Client | AuthenticatedClient:
        built = kind(  # type: ignore[arg-type]
            base_url=server.url, httpx_args={"event_hooks": {"request": [hook]}}, **token
        )
        return (
            built.with_headers({"X-Trace": "1"})
            .with_cookies({"session": "s"})
            .with_timeout(httpx.Timeout(5.0))
        )

    with made(seen.append) as configured:
        configured.get_httpx_client().get(BALANCE_PATH)
        own: list[httpx.Request] = []
        configured.set_httpx_client(
            httpx.Client(base_url=server.url, event_hooks={"request": [own.append]})
        )
        configured.get_httpx_client().get(BALANCE_PATH)

    async def asynchronous() -> None:
        async with made(record) as again:
            await again.get_async_httpx_client().get(BALANCE_PATH)

    asyncio.run(asynchronous())
    assert [request.url.path for request in own] == [BALANCE_PATH]
    assert len(seen) == 2  # the sync request, then the async one
    for request in seen:
        assert request.headers["X-Trace"] == "1"
        assert request.headers["Cookie"] == "session=s"
        assert request.extensions["timeout"]["read"] == 5.0
        assert ("Authorization" in request.headers) is (kind is AuthenticatedClient)
