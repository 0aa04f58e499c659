"""The OpenAPI contract, read once from the copy that `make generate` ships with the client.

Every range, enum, default, error reason and price coefficient the overlay, the reference server
and the tests use comes from here, so the spec stays the one place where each is written down.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any, Final, NamedTuple

import novita_flux_api

SPEC_PATH: Final = Path(novita_flux_api.__file__).with_name("openapi.json")

Schema = dict[str, Any]


class Operation(NamedTuple):
    method: str
    path: str
    body: dict[str, Any]


class KnownReason(NamedTuple):
    status: int
    kind: str  # bad_request, authentication, permission, not_found, rate_limit, server
    billed: str = "possibly"  # "never": known not to have been billed, so safe to send again
    also_seen_with: tuple[int, ...] = ()  # other statuses Novita's own tables give it

    @property
    def never_billed(self) -> bool:
        return self.billed == "never"


class Pricing(NamedTuple):
    coefficient: Decimal
    pixel_steps_unit: int
    currency: str


@cache
def document() -> dict[str, Any]:
    """The whole OpenAPI document as a dict (do not mutate it)."""
    loaded: dict[str, Any] = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    return loaded


def resolve(schema: Schema, spec: Mapping[str, Any] | None = None) -> Schema:
    """Follow a local `$ref` (`#/components/...`) to the schema it names, in `spec`: the
    shipped document unless another is given (the spec differ reads released ones)."""
    while "$ref" in schema:
        node: Any = document() if spec is None else spec
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


# Each reader below has an uncached form taking any document (`*_in`) and a cached one for the
# shipped document, which the client and the reference server call on every request.


def operation_in(spec: Mapping[str, Any]) -> Operation:
    """The endpoint: the spec describes exactly one operation."""
    ((path, methods),) = spec["paths"].items()
    ((method, body),) = ((m, b) for m, b in methods.items() if not m.startswith("x-"))
    return Operation(method.upper(), path, body)


@cache
def operation() -> Operation:
    return operation_in(document())


def request_schema_in(spec: Mapping[str, Any]) -> Schema:
    content = operation_in(spec).body["requestBody"]["content"]["application/json"]
    return resolve(content["schema"], spec)


@cache
def request_schema() -> Schema:
    return request_schema_in(document())


@cache
def request_example() -> dict[str, Any]:
    example: dict[str, Any] = operation().body["requestBody"]["content"]["application/json"][
        "example"
    ]
    return example


def response_schema_in(spec: Mapping[str, Any], status: int = 200) -> Schema:
    response = resolve(operation_in(spec).body["responses"][str(status)], spec)
    return resolve(response["content"]["application/json"]["schema"], spec)


@cache
def response_schema(status: int = 200) -> Schema:
    return response_schema_in(document(), status)


@cache
def documented_statuses() -> tuple[int, ...]:
    return tuple(sorted(int(code) for code in operation().body["responses"]))


@cache
def error_schema() -> Schema:
    return resolve(document()["components"]["schemas"]["ErrorResponse"])


@cache
def known_reasons() -> dict[str, KnownReason]:
    reasons = error_schema()["x-known-reasons"]
    return {
        name: KnownReason(
            entry["status"],
            entry["kind"],
            entry.get("billed", "possibly"),  # unsaid is the careful answer
            tuple(entry.get("also_seen_with", ())),
        )
        for name, entry in reasons.items()
    }


@cache
def image_type_spellings() -> tuple[bool, dict[str, str]]:
    """How the response's image type is normalised: (compare lowercased?, alias -> name)."""
    schema = resolve(document()["components"]["schemas"]["ResponseImageType"])
    rule = schema.get("x-normalise", {})
    return bool(rule.get("lowercase")), dict(rule.get("aliases", {}))


def canonical_image_type(name: str) -> str:
    """The request's name for a response's image type: 'JPG' -> 'jpeg'."""
    lowercase, aliases = image_type_spellings()
    if lowercase:
        name = name.lower()
    return aliases.get(name, name)


@cache
def also_named(field: str) -> tuple[str, ...]:
    """Other names Novita's pages give a request field (`x-also-named`); never sent by the
    client, only asked about by `novita-flux verify`."""
    properties = request_schema()["properties"]
    return tuple(properties[field].get("x-also-named", ()))


@cache
def image_media_types() -> tuple[str, ...]:
    """The Content-Types a storage host may serve an image with (`x-served-as`), the preferred
    first; `{image_type}` stands for the type the request asked for."""
    image = resolve(document()["components"]["schemas"]["Image"])
    return tuple(image["properties"]["image_url"]["x-served-as"])


@cache
def pricing() -> Pricing:
    raw = document()["info"]["x-pricing"]
    return Pricing(Decimal(raw["coefficient"]), int(raw["pixel_steps_unit"]), raw["currency"])


@cache
def default_images_per_minute() -> int:
    """The API's documented default rate limit per key."""
    limit: int = document()["info"]["x-rate-limit"]["images_per_minute"]
    return limit


@cache
def default_base_url() -> str:
    url: str = document()["servers"][0]["url"]
    return url
