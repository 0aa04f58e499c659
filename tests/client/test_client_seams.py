"""The client's seams (build_request, build_image_request, send, lanes): the public steps that
`verify` and the batch drive instead of the client's private parts."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from novita_flux import FluxSchnell, ImageDownloadError, ValidationError
from novita_flux.testing import ReferenceServer
from tests.support import generation_of

KEY = "seams-key"


@pytest.fixture(scope="module")
def server() -> Iterator[ReferenceServer]:
    with ReferenceServer(api_key=KEY) as running:
        yield running


def test_a_request_goes_out_as_built_and_the_key_only_when_asked(server: ReferenceServer) -> None:
    with FluxSchnell(api_key=KEY, base_url=server.url) as flux:
        body = {"prompt": "x", "width": 63}  # out of range: sent as given, refused there
        request = flux.build_request("flux1Schnell", body)
        assert (request.method, request.url.path) == ("POST", "/v3beta/flux-1-schnell")
        assert "authorization" not in request.headers  # added by send, for the API only
        refused = flux.send(request)
        assert refused.status_code == 400
        balance = flux.build_request("balanceDetail")
        assert balance.headers["content-type"] == "application/json"
        assert flux.send(balance).status_code == 200
        assert flux.send(flux.build_request("balanceDetail"), authenticate=False).status_code == 401


def test_an_image_request_is_bare_and_a_stream_is_left_open(server: ReferenceServer) -> None:
    with FluxSchnell(api_key=KEY, base_url=server.url) as flux:
        generation = flux.generate("x", width=64, height=64)
        request = flux.build_image_request(generation.images[0].url)
        answer = flux.send(request, stream=True)
        assert not answer.is_closed
        assert answer.read().startswith(b"\x89PNG")
        answer.close()
    assert server.faults.image_requests_with_authorization == 0


def test_a_request_carries_the_clients_timeout_or_the_one_given() -> None:
    with FluxSchnell(api_key=KEY, base_url="http://127.0.0.1:9", timeout=60) as flux:
        default = flux.build_request("balanceDetail")
        given = flux.build_request("balanceDetail", timeout=5)
    assert default.extensions["timeout"] == dict.fromkeys(("connect", "read", "write", "pool"), 60)
    assert given.extensions["timeout"]["read"] == 5


def test_an_image_request_carries_the_clients_timeout_or_the_one_given() -> None:
    with FluxSchnell(api_key=KEY, base_url="http://127.0.0.1:9", timeout=60) as flux:
        default = flux.build_image_request("https://storage.example.com/0.png")
        given = flux.build_image_request("https://storage.example.com/0.png", timeout=5)
    assert default.extensions["timeout"]["read"] == 60
    assert given.extensions["timeout"] == dict.fromkeys(("connect", "read", "write", "pool"), 5)


def test_an_image_request_for_a_link_that_cannot_be_fetched_names_the_image_given() -> None:
    image = generation_of("png").images[0]
    with (
        FluxSchnell(api_key=KEY, base_url="http://127.0.0.1:9") as flux,
        pytest.raises(ImageDownloadError) as caught,
    ):
        flux.build_image_request("https://storage.example.com:70000/0.png", image=image)
    assert str(caught.value).startswith("the link of image 0 cannot be fetched: its port 70000")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda flux: flux.build_request("nope"), "operation_id: 'nope' is not one of"),
        (lambda flux: flux.build_request("balanceDetail", {}), "takes no body"),
        (lambda flux: flux.build_request("flux1Schnell", {1j}), "body: "),
        (lambda flux: flux.build_image_request(None), "url: None is not a string"),
        (
            lambda flux: flux.build_image_request("https://h/0.png", image="0.png"),
            "image: '0.png' is not a GeneratedImage",
        ),
        (lambda flux: flux.send("GET /"), "request: 'GET /' is not an httpx.Request"),
        (lambda flux: flux.send(httpx.Request("GET", "/x"), stream=1), "stream: 1 is not True"),
    ],
)
def test_a_seam_refuses_what_it_cannot_use_naming_it(
    call: Callable[[FluxSchnell], object], message: str
) -> None:
    with (
        FluxSchnell(api_key=KEY, base_url="http://127.0.0.1:9") as flux,
        pytest.raises(ValidationError, match=message.replace("(", r"\(")),
    ):
        call(flux)


def test_lanes_are_this_client_first_then_clients_of_their_own() -> None:
    with FluxSchnell(api_key=KEY, base_url="http://127.0.0.1:9") as flux:
        lanes = flux.lanes(64)
        assert lanes[0] is flux
        assert len(lanes) > 1
        for lane in lanes[1:]:
            lane.close()
