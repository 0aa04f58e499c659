"""What the client makes of a 200: every conforming body read without loss, every other refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import respx
from hypothesis import given

from novita_flux import FluxSchnell, ResponseValidationError, _spec
from novita_flux_api.models import Flux1SchnellRequest, Flux1SchnellResponse
from tests.strategies import conforming_bodies, nonconforming_bodies, valid_requests
from tests.support import API_URL, KEY

EXAMPLE = _spec.request_example()


@pytest.fixture(scope="module")
def flux() -> Iterator[FluxSchnell]:
    with FluxSchnell(api_key=KEY, max_retries=0) as client:
        yield client


def keeps(kept: str, raw: str) -> bool:
    """Whether an error kept the raw body: whole, or cut short and saying how much is missing."""
    if kept == raw:
        return True
    start, _, rest = kept.rpartition("... [")
    return raw.startswith(start) and rest == f"{len(raw) - len(start)} more]"


@given(body=conforming_bodies())
def test_a_conforming_body_is_parsed_without_loss(flux: FluxSchnell, body: dict[str, Any]) -> None:
    with respx.mock as router:
        router.post(API_URL).respond(200, content=json.dumps(body).encode())
        before = datetime.now(UTC)
        generation = flux.generate(**EXAMPLE)
        after = datetime.now(UTC)
    assert generation.task_id == body["task"]["task_id"]
    assert [(image.url, image.ttl, image.type) for image in generation.images] == [
        (image["image_url"], image["image_url_ttl"], image["image_type"])
        for image in body["images"]
    ]
    assert [image.index for image in generation.images] == list(range(len(body["images"])))
    for image in generation.images:  # timed from some instant of the exchange, plus the TTL
        ttl = timedelta(seconds=image.ttl)
        assert before + ttl <= image.expires_at <= after + ttl


@given(content=nonconforming_bodies())
def test_a_nonconforming_body_raises_response_validation_error_and_nothing_else(
    flux: FluxSchnell, content: bytes
) -> None:
    with respx.mock as router:
        router.post(API_URL).respond(200, content=content)
        with pytest.raises(ResponseValidationError) as raised:
            flux.generate(**EXAMPLE)
    assert raised.value.response.content == content
    assert keeps(raised.value.body, content.decode())


@given(request=valid_requests())
def test_the_generated_request_model_round_trips_every_valid_request(
    request: dict[str, Any],
) -> None:
    assert Flux1SchnellRequest.from_dict(request).to_dict() == request


@given(body=conforming_bodies())
def test_the_generated_response_model_round_trips_every_conforming_body(
    body: dict[str, Any],
) -> None:
    assert Flux1SchnellResponse.from_dict(body).to_dict() == body
