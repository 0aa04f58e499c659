"""The OpenAPI contract, read once from the copy that `make generate` ships with the client.

Every range, enum, default, error reason and price coefficient the overlay, the reference server
and the tests use comes from here, so the spec stays the one place where each is written down.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any, Final, NamedTuple


# Found, not imported: the generated package's __init__ loads its client, which the overlay
# does not use (issue 22: `import novita_flux` loads nothing a first generate() does not need).
def _shipped_spec() -> Path:
    generated = importlib.util.find_spec("novita_flux_api")
    if generated is None or generated.origin is None:
        raise ImportError("novita_flux needs novita_flux_api, the generated package it ships with")
    return Path(generated.origin).with_name("openapi.json")


SPEC_PATH: Final = _shipped_spec()

Schema = dict[str, Any]


# The operations the overlay calls, by their `operationId` (the spec's own names; never by path).
GENERATE: Final = "flux1Schnell"
BALANCE: Final = "balanceDetail"


class Operation(NamedTuple):
    method: str
    path: str
    body: dict[str, Any]
    id: str = ""  # its operationId

    @property
    def free(self) -> bool:
        """Whether the spec says the operation is never billed (`x-billed: never`), so that any
        failure of it may be sent again."""
        return self.body.get("x-billed") == "never"


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


def operations_in(spec: Mapping[str, Any]) -> dict[str, Operation]:
    """Every operation of the spec, by operationId, in the document's order."""
    found: dict[str, Operation] = {}
    for path, methods in spec["paths"].items():
        for method, body in methods.items():
            if method.startswith("x-") or not isinstance(body, dict):
                continue
            operation_id = body.get("operationId")
            if not isinstance(operation_id, str) or operation_id in found:
                raise ValueError(
                    f"{method.upper()} {path} needs an operationId no other operation has"
                )
            found[operation_id] = Operation(method.upper(), path, body, operation_id)
    return found


@cache
def operations() -> dict[str, Operation]:
    return operations_in(document())


def operation_in(spec: Mapping[str, Any], operation_id: str) -> Operation:
    """The operation named `operation_id`; KeyError naming it when the spec has none."""
    found = operations_in(spec)
    if operation_id not in found:
        raise KeyError(f"the spec has no operation {operation_id!r}; it has {', '.join(found)}")
    return found[operation_id]


@cache
def operation(operation_id: str) -> Operation:
    return operation_in(document(), operation_id)


def request_schema_in(spec: Mapping[str, Any], operation_id: str) -> Schema:
    content = operation_in(spec, operation_id).body["requestBody"]["content"]["application/json"]
    return resolve(content["schema"], spec)


@cache
def request_schema(operation_id: str) -> Schema:
    return request_schema_in(document(), operation_id)


@cache
def request_example(operation_id: str) -> dict[str, Any]:
    example: dict[str, Any] = operation(operation_id).body["requestBody"]["content"][
        "application/json"
    ]["example"]
    return example


def response_schema_in(spec: Mapping[str, Any], operation_id: str, status: int = 200) -> Schema:
    response = resolve(operation_in(spec, operation_id).body["responses"][str(status)], spec)
    return resolve(response["content"]["application/json"]["schema"], spec)


@cache
def response_schema(operation_id: str, status: int = 200) -> Schema:
    return response_schema_in(document(), operation_id, status)


@cache
def response_example(operation_id: str, status: int = 200) -> Any:
    """The example the spec gives of an operation's answer."""
    response = resolve(operation(operation_id).body["responses"][str(status)])
    return response["content"]["application/json"]["example"]


@cache
def documented_statuses(operation_id: str) -> tuple[int, ...]:
    return tuple(sorted(int(code) for code in operation(operation_id).body["responses"]))


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
    properties = request_schema(GENERATE)["properties"]
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


class Unit(NamedTuple):
    value: Decimal  # what one unit is worth, in `currency`
    currency: str


@cache
def amount_fields(operation_id: str) -> dict[str, Unit]:
    """The fields of an operation's 200 body that are amounts of money (their schema, or one it
    names through `allOf`, has an `x-unit`), with the unit each counts in."""
    found: dict[str, Unit] = {}
    for name, field in response_schema(operation_id)["properties"].items():
        for part in (field, *field.get("allOf", ())):
            unit = resolve(part).get("x-unit")
            if unit is not None:
                found[name] = Unit(Decimal(unit["value"]), str(unit["currency"]))
    return found


@cache
def default_base_url() -> str:
    url: str = document()["servers"][0]["url"]
    return url
