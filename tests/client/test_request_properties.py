"""What the client sends: every in-range request exactly as given, every other one never."""

from __future__ import annotations

import json
import typing
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
import respx
from hypothesis import example, given, settings

from novita_flux import AsyncFluxSchnell, FluxSchnell, ValidationError, _spec
from novita_flux._request import compiled_request_schema, validate_request
from novita_flux._schema import conform
from tests.strategies import (
    DEFAULTS,
    FIELDS,
    extreme_request,
    just_past_the_edges,
    requests_missing_a_field,
    requests_with_an_unknown_field,
    requests_with_one_bad_field,
    valid_requests,
    with_examples,
)
from tests.support import API_URL, KEY, success_body

# generate() reads None as "your default" only where its signature admits None (a random seed,
# the API's default image type); for every other field None is a bad value like any other.
NONE_MEANS_DEFAULT = frozenset(
    name
    for name, hint in typing.get_type_hints(FluxSchnell.generate).items()
    if name in FIELDS and type(None) in typing.get_args(hint)
)

# A second judge, independent of novita_flux._schema: jsonschema reading the spec's own request
# schema, $refs and all. OpenAPI 3.0 schema objects use draft 4's validation keywords.
_REQUEST_REF = _spec.operation(_spec.GENERATE).body["requestBody"]["content"]["application/json"][
    "schema"
]
SPEC_VALIDATOR = jsonschema.Draft4Validator(
    {**_REQUEST_REF, "components": _spec.document()["components"]}
)


# The async client shares its validation with the sync one: a smaller sample shows the wiring.
ASYNC_SAMPLE = settings(max_examples=max(10, settings.default.max_examples // 4))


@pytest.fixture(scope="module")
def flux() -> Iterator[FluxSchnell]:
    with FluxSchnell(api_key=KEY, max_retries=0) as client:
        yield client


def sent(route: respx.Route) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(route.calls.last.request.content)
    return body


@given(request=valid_requests())
@example(request=extreme_request(0))
@example(request=extreme_request(1))
def test_an_in_range_request_is_sent_once_exactly_as_given_and_conforms_to_the_spec(
    flux: FluxSchnell, request: dict[str, Any]
) -> None:
    with respx.mock as router:
        route = router.post(API_URL).respond(200, json=success_body())
        flux.generate(**request)
    assert route.call_count == 1
    body = sent(route)
    assert body == DEFAULTS | request
    assert conform(compiled_request_schema(), body) == body
    SPEC_VALIDATOR.validate(body)


@given(case=requests_with_one_bad_field(none_means_default=NONE_MEANS_DEFAULT))
@with_examples(case=just_past_the_edges())
def test_an_out_of_range_or_ill_typed_argument_is_named_and_nothing_is_sent(
    flux: FluxSchnell, case: tuple[str, dict[str, Any]]
) -> None:
    field, request = case
    with respx.mock(assert_all_called=False) as router:
        route = router.post(API_URL).respond(200, json=success_body())
        with pytest.raises(ValidationError) as raised:
            flux.generate(**request)
    assert raised.value.field == field
    assert route.call_count == 0


@given(case=requests_with_one_bad_field())
@with_examples(case=just_past_the_edges())
def test_a_body_with_one_bad_value_none_included_is_refused_naming_the_field(
    case: tuple[str, dict[str, Any]],
) -> None:
    field, request = case
    with pytest.raises(ValidationError) as raised:
        validate_request(request)
    assert raised.value.field == field


@given(case=requests_missing_a_field())
def test_a_body_missing_a_required_field_is_refused_naming_the_field(
    case: tuple[str, dict[str, Any]],
) -> None:
    field, request = case
    with pytest.raises(ValidationError) as raised:
        validate_request(request)
    assert raised.value.field == field


@given(case=requests_with_an_unknown_field())
def test_a_body_with_a_field_the_spec_does_not_know_is_refused_naming_the_field(
    case: tuple[str, dict[str, Any]],
) -> None:
    field, request = case
    with pytest.raises(ValidationError) as raised:
        validate_request(request)
    assert raised.value.field == field


@pytest.mark.anyio
@ASYNC_SAMPLE
@given(request=valid_requests())
@example(request=extreme_request(1))
async def test_the_async_client_sends_an_in_range_request_exactly_as_given(
    request: dict[str, Any],
) -> None:
    with respx.mock as router:
        route = router.post(API_URL).respond(200, json=success_body())
        async with AsyncFluxSchnell(api_key=KEY, max_retries=0) as flux:
            await flux.generate(**request)
    assert route.call_count == 1
    assert sent(route) == DEFAULTS | request


@pytest.mark.anyio
@ASYNC_SAMPLE
@given(case=requests_with_one_bad_field(none_means_default=NONE_MEANS_DEFAULT))
@with_examples(case=just_past_the_edges())
async def test_the_async_client_names_a_bad_argument_and_sends_nothing(
    case: tuple[str, dict[str, Any]],
) -> None:
    field, request = case
    with respx.mock(assert_all_called=False) as router:
        route = router.post(API_URL).respond(200, json=success_body())
        async with AsyncFluxSchnell(api_key=KEY, max_retries=0) as flux:
            with pytest.raises(ValidationError) as raised:
                await flux.generate(**request)
    assert raised.value.field == field
    assert route.call_count == 0
