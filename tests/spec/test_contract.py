"""The handwritten spec is a valid OpenAPI document and says what Novita's documentation says."""

from __future__ import annotations

import copy
from decimal import Decimal
from pathlib import Path

import yaml
from openapi_spec_validator import validate

from novita_flux import _spec
from novita_flux._schema import compile_schema

SPEC_FILE = Path(__file__).resolve().parents[2] / "openapi" / "flux-1-schnell.yaml"


def load_yaml() -> dict:
    return yaml.safe_load(SPEC_FILE.read_text(encoding="utf-8"))


def test_spec_is_a_valid_openapi_document() -> None:
    validate(load_yaml())


def test_shipped_json_copy_is_the_yaml_spec() -> None:
    assert _spec.document() == load_yaml()


def test_request_fields_match_novitas_documentation() -> None:
    # The one place these numbers are typed outside the spec: the check that the spec states
    # what https://novita.ai/docs/api-reference/model-apis-flux-1-schnell documents.
    documented = {
        "prompt": ("minLength", 1, "maxLength", 1024),
        "seed": ("minimum", 0, "maximum", 4294967295),
        "steps": ("minimum", 1, "maximum", 100),
        "width": ("minimum", 64, "maximum", 2048),
        "height": ("minimum", 64, "maximum", 2048),
        "image_num": ("minimum", 1, "maximum", 8),
    }
    schema = _spec.request_schema(_spec.GENERATE)
    assert set(schema["required"]) == set(documented)
    assert schema["additionalProperties"] is False
    for name, (low_key, low, high_key, high) in documented.items():
        field = schema["properties"][name]
        assert (field[low_key], field[high_key]) == (low, high), name
    image_type = schema["properties"]["response_image_type"]
    assert image_type["default"] == "png"
    assert _spec.resolve(image_type["allOf"][0])["enum"] == ["png", "webp", "jpeg"]
    assert "response_image_format" in image_type["description"]


def test_price_is_the_documented_formula() -> None:
    price = _spec.pricing()
    assert (price.coefficient, price.pixel_steps_unit, price.currency) == (
        Decimal("0.003"),
        1024 * 1024 * 4,
        "USD",
    )


def test_every_documented_error_status_has_the_error_envelope() -> None:
    assert _spec.documented_statuses(_spec.GENERATE) == (200, 400, 401, 403, 404, 429, 500, 503)
    for status in _spec.documented_statuses(_spec.GENERATE)[1:]:
        assert _spec.response_schema(_spec.GENERATE, status) is _spec.error_schema()
    assert set(_spec.error_schema()["required"]) == {"code", "reason", "message"}


def test_known_reasons_sit_under_documented_statuses() -> None:
    reasons = _spec.known_reasons()
    assert reasons["MISSING_API_KEY"][:2] == (400, "authentication")
    assert reasons["INVALID_API_KEY"][:2] == (403, "authentication")
    assert reasons["API_NOT_ALLOWED"][:2] == (403, "permission")
    assert reasons["BILLING_BALANCE_NOT_ENOUGH"].also_seen_with == (403,)
    for name, reason in reasons.items():
        assert name.isupper(), name
        assert reason.status in _spec.documented_statuses(_spec.GENERATE), name
        assert set(reason.also_seen_with) <= set(_spec.documented_statuses(_spec.GENERATE)), name


def test_every_known_reason_says_whether_it_can_have_been_billed() -> None:
    billed = {name: reason.billed for name, reason in _spec.known_reasons().items()}
    assert set(billed.values()) == {"never", "possibly"}
    # The task ran (or its billing step did): sending it again could pay twice.
    assert {name for name, value in billed.items() if value == "possibly"} == {
        "TASK_FAILED",
        "BILLING_FAILED",
    }
    raw = _spec.error_schema()["x-known-reasons"]
    assert all("billed" in entry for entry in raw.values())  # said, never defaulted


def test_operation_is_the_novita_endpoint() -> None:
    operation = _spec.operation(_spec.GENERATE)
    assert (operation.method, operation.path) == ("POST", "/v3beta/flux-1-schnell")
    assert _spec.default_base_url() == "https://api.novita.ai"
    assert operation.body["security"] == [{"bearerAuth": []}]


def test_the_apis_own_version_is_the_one_in_the_path() -> None:
    # info.version is the contract's (the release's) version; the API's is kept beside it.
    api_version = _spec.document()["info"]["x-api-version"]
    assert _spec.operation(_spec.GENERATE).path.split("/")[1] == api_version == "v3beta"


def test_a_schema_compiles_against_the_document_it_is_given() -> None:
    # The spec differ compiles released documents with the overlay's own compiler: a $ref must
    # resolve in the document given, never silently in the shipped one.
    other = copy.deepcopy(load_yaml())
    other["components"]["schemas"]["ImageType"]["enum"] = ["png"]
    field = _spec.request_schema_in(other, _spec.GENERATE)["properties"]["response_image_type"]
    assert compile_schema(field, other)["enum"] == ["png"]
    assert compile_schema(field)["enum"] == ["png", "webp", "jpeg"]
    assert _spec.response_schema_in(other, _spec.GENERATE, 400) == _spec.error_schema()
