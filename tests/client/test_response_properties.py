"""What the client makes of a 200: every conforming body read without loss, every other refused."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import httpx
import pytest
import respx
from hypothesis import example, given, settings

from novita_flux import FluxSchnell, ResponseValidationError, _spec
from novita_flux._base_client import parse_generation
from novita_flux._schema import compile_schema, conform
from novita_flux_api.models import Flux1SchnellRequest, Flux1SchnellResponse
from tests.strategies import conforming_bodies, nonconforming_bodies, valid_requests
from tests.support import API_URL, KEY, encoded

EXAMPLE = _spec.request_example(_spec.GENERATE)
DOCS_EXAMPLE = _spec.operation(_spec.GENERATE).body["responses"]["200"]["content"][
    "application/json"
]["example"]
# A body shaped like what Novita's sibling endpoints were logged sending (OBSERVED.md).
OBSERVED_BODY: dict[str, Any] = {
    "images": [
        {
            "image_url": "https://cdn.example.com/out/1.png",
            "image_url_ttl": "0",
            "image_type": "PNG",
            "nsfw_detection_result": {"valid": True, "confidence": 0.01},
        },
        {
            "image_url": "https://faas.example.com/out/2.jpg?X-Amz-Expires=3600",
            "image_url_ttl": "3600",
            "image_type": "jpg",
            "nsfw_detection_result": None,
        },
    ],
    "task": {"task_id": "t-1", "status": "TASK_STATUS_SUCCEED", "eta": 0},
    "extra": {"seed": "18446744073709551615", "debug_info": {}},
    "videos": [],
    "audios": [],
}


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


# How the spec says a response's image type is spelled, and what it means.
_ALIASES = {"jpg": "jpeg"}


def named(image_type: str) -> str:
    return _ALIASES.get(image_type.lower(), image_type.lower())


@given(body=conforming_bodies())
@example(body=DOCS_EXAMPLE)
@example(body=OBSERVED_BODY)
def test_a_conforming_body_is_parsed_without_loss(flux: FluxSchnell, body: dict[str, Any]) -> None:
    with respx.mock as router:
        router.post(API_URL).respond(200, content=json.dumps(body).encode())
        before = datetime.now(UTC)
        generation = flux.generate(**EXAMPLE)
        after = datetime.now(UTC)
    assert generation.task_id == body["task"]["task_id"]
    assert [(image.url, image.ttl, image.type) for image in generation.images] == [
        (image["image_url"], int(image["image_url_ttl"]), named(image["image_type"]))
        for image in body["images"]
    ]
    assert all(type(image.ttl) is int for image in generation.images)
    assert [image.index for image in generation.images] == list(range(len(body["images"])))
    for image in generation.images:  # timed from some instant of the exchange, plus the TTL
        if image.ttl == 0:  # the API states no expiry
            assert image.expires_at is None
            assert not image.expired
            continue
        assert image.expires_at is not None
        ttl = timedelta(seconds=image.ttl)
        assert before + ttl <= image.expires_at <= after + ttl
    # What the spec does not name is kept: the whole body, and each image's other fields.
    assert generation.raw == body
    for image, sent in zip(generation.images, body["images"], strict=True):
        named_fields = {"image_url", "image_url_ttl", "image_type"}
        assert image.extra == {k: v for k, v in sent.items() if k not in named_fields}


def readable_links(body: Any) -> list[str]:
    """The image links in a body that a person could still read and fetch."""
    items = body.get("images") if isinstance(body, dict) else None
    links = []
    for item in items if isinstance(items, list) else ():
        url = item.get("image_url") if isinstance(item, dict) else item
        try:
            parts = urlsplit(url) if isinstance(url, str) else None
        except ValueError:  # "http://[x": not a link anyone can fetch
            parts = None
        if parts is not None and parts.scheme in ("http", "https") and parts.netloc:
            links.append(url)
    return links


@given(content=nonconforming_bodies())
@example(content=json.dumps(DOCS_EXAMPLE | {"task": {}}).encode())
@example(
    content=json.dumps(
        OBSERVED_BODY | {"images": [*OBSERVED_BODY["images"], {"image_url": "x", "image_type": 1}]}
    ).encode()
)
def test_a_nonconforming_body_raises_response_validation_error_keeping_what_was_paid_for(
    flux: FluxSchnell, content: bytes
) -> None:
    with respx.mock as router:
        router.post(API_URL).respond(200, content=content)
        with pytest.raises(ResponseValidationError) as raised:
            flux.generate(**EXAMPLE)
    error = raised.value
    assert error.response.content == content
    assert error.possibly_billed
    assert "likely billed" in str(error)
    try:
        body = json.loads(content)
    except ValueError:
        assert keeps(error.body, content.decode())
        assert (error.task_id, error.images) == (None, [])
        return
    assert error.body == body  # the whole parsed body
    assert [image.url for image in error.images] == readable_links(body)
    task = body.get("task") if isinstance(body, dict) else None
    task_id = task.get("task_id") if isinstance(task, dict) else None
    assert error.task_id == (task_id if isinstance(task_id, str) else None)
    if error.images:
        assert error.generation is not None
        assert error.generation.images == error.images
        assert error.generation.request == error.request


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


@given(body=conforming_bodies())
@example(body=OBSERVED_BODY)
@example(body=DOCS_EXAMPLE)
def test_the_client_reads_every_conforming_body_as_the_generated_model_reads_it(
    body: dict[str, Any],
) -> None:
    # The client reads the conformed answer as it stands (issue 22); the generated model is
    # the low-level client's reading of the same spec, and the two must never part.
    sent = datetime(2026, 1, 1, tzinfo=UTC)
    request = {"seed": 1, "image_num": len(body["images"]), "response_image_type": "png"}
    generation = parse_generation(httpx.Response(200, json=body), request, Decimal(0), sent)
    model = Flux1SchnellResponse.from_dict(
        conform(compile_schema(_spec.response_schema(_spec.GENERATE)), body)
    )
    assert generation.task_id == model.task.task_id
    assert [
        (image.url, image.ttl, image.type, image.extra, image.index) for image in generation.images
    ] == [
        (
            read.image_url,
            int(read.image_url_ttl),
            _spec.canonical_image_type(read.image_type),
            read.additional_properties,
            index,
        )
        for index, read in enumerate(model.images)
    ]


@settings(max_examples=max(10, settings.default.max_examples // 3))  # a whole batch each
@given(content=nonconforming_bodies())
@example(content=b"<html>502 Bad Gateway</html>")
@example(content=json.dumps(DOCS_EXAMPLE | {"task": {}}).encode())
def test_a_batch_line_that_got_a_broken_200_is_paid_for_and_never_generated_again(
    content: bytes,
) -> None:
    from novita_flux._cli import main

    png = encoded("png", (64, 64))
    with tempfile.TemporaryDirectory() as scratch, respx.mock as router:
        source = Path(scratch) / "in.jsonl"
        source.write_text('{"prompt": "a fox", "width": 64, "height": 64, "seed": 1}\n')
        api = router.post(API_URL).respond(200, content=content)
        router.route(method="GET").respond(200, content=png)  # every link serves its image
        argv = ["batch", str(source), "--out", scratch, "--images-per-minute", "0"]
        environment = {"NOVITA_API_KEY": KEY, "NOVITA_BASE_URL": API_URL.rsplit("/v3beta", 1)[0]}
        with mock.patch.dict(os.environ, environment):
            first = main(argv)
            again = main(argv)
        (entry,) = map(json.loads, Path(scratch, "manifest.jsonl").read_text().splitlines())
        try:
            links = readable_links(json.loads(content))
        except ValueError:
            links = []
        assert api.call_count == 1  # the rerun generated nothing
        if links:  # paid for, and every readable image saved
            # One image was paid for: any other number is said (ShortAnswer) on every run.
            code = 0 if len(links) == 1 else 1
            assert (first, again, entry["status"]) == (code, code, "saved")
            assert len(entry["files"]) == len(links)
            assert (entry["error"] or {}).get("type") == (None if code == 0 else "ShortAnswer")
        else:  # paid for, nothing to save: possibly billed, not sent again unless asked
            assert (first, again, entry["status"]) == (1, 1, "unknown")
