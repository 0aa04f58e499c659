"""The probe plan: requests drawn from the spec that, between them, check it against a server,
each priced before anything is sent.

Nothing here is a second copy of a range: every bound, enum, default, reason and price is read
from the spec, so a spec that changes moves the plan with it. What is chosen here is only what
the spec cannot say: a short prompt to send, which type to ask for when the question is whether
a field is honoured, and the three open questions of the project's evidence (OBSERVED.md).

Every request is the cheapest the spec allows (width, height, steps and image_num at their
minimum) except in the one field a probe is about. Every operation of the spec that takes no
request body is read once with the key (`reads`), first; the balance among them is read again
at the end, after one request that brings the plan's price to a whole number of the balance's
units, to check the price formula against the account (`balance`, see _price).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any, Final

import attrs

from novita_flux._request import compiled_request_schema, estimate_cost, request_cost
from novita_flux._spec import (
    BALANCE,
    GENERATE,
    Schema,
    also_named,
    default_images_per_minute,
    known_reasons,
    operations,
    request_example,
)
from novita_flux.verify._price import MIN_UNITS, in_units, reading_send, top_up
from novita_flux.verify._probes import GROUPS, Auth, Plan, Probe, Send, total

# The fields estimate_cost prices a request by: held at their minimum unless under test.
PRICED: Final = ("width", "height", "steps", "image_num")
PROMPT: Final = "a red circle on a white background"
# Multi-byte text in scripts of 2 and 3 UTF-8 bytes a character, all in the Basic Multilingual
# Plane: a character is then one code point and one UTF-16 unit, so "1024 characters" means the
# same to every server, whatever it counts in.
MULTI_BYTE: Final = "赤い円、cercle rouge, красный круг, κόκκινος κύκλος; "
OUTSIDE_ENUM: Final = "gif"  # a real image type that no enum of the spec lists
UNKNOWN_FIELD: Final = "x_novita_flux_verify"
# The required field some third-party callers leave out (OBSERVED.md row 6).
OMITTED: Final = "seed"
REFUSED_REASON: Final = "INVALID_REQUEST_BODY"


def build_plan(
    *,
    probe_rate_limit: bool = False,
    groups: Iterable[str] | None = None,
    schema: Schema | None = None,
) -> Plan:
    """The probes for these options, drawn from `schema` (the spec's request schema by
    default); `groups` keeps only the probes of those groups (see GROUPS). The rate-limit probe
    is sent when asked for, by `probe_rate_limit` or by naming its group."""
    schema = compiled_request_schema() if schema is None else schema
    chosen = set(GROUPS if groups is None else groups)
    unknown = chosen - set(GROUPS)
    if unknown:
        raise ValueError(
            f"unknown probe group(s) {', '.join(sorted(unknown))}; the groups are "
            + ", ".join(GROUPS)
        )
    base = cheapest_body(schema)
    generating = _merged([*_bounds(schema, base), *_types(schema, base)])
    reads = list(_reads())
    probes = [
        *reads,
        *generating[:1],  # the cheapest request first: it tells whether the key works
        *_invalid(schema, base),
        *_authentication(base),
        *generating[1:],
        *_questions(schema, base),
    ]
    if probe_rate_limit or (groups is not None and "rate-limit" in chosen):
        probes.append(_rate_limit(schema, base))
    kept = [probe for probe in probes if probe.group in chosen]
    if "balance" in chosen:
        kept = _price_check(kept, reads, schema, base)
    return Plan(tuple(kept))


def cheapest_body(schema: Schema) -> dict[str, Any]:
    """The cheapest valid request: priced fields at their minimum, a short prompt, the default
    type, and the spec's example seed (an edge value would not be fair to the question of
    whether a seed repeats)."""
    example = request_example(GENERATE)
    body: dict[str, Any] = {}
    for name, field in schema["properties"].items():
        if "enum" in field:
            body[name] = field.get("default", field["enum"][0])
        elif field.get("type") == "integer":
            body[name] = field["minimum"] if name in PRICED else example.get(name, field["minimum"])
        elif field.get("type") == "string":
            body[name] = _text(
                PROMPT, max(field.get("minLength", 0), min(len(PROMPT), field["maxLength"]))
            )
    return body


# --- operations that take no body, and the price check ------------------------------------------


def _reads() -> Iterator[Probe]:
    """Each operation that takes no request body, sent once with the key: its answer judged by
    the spec (the balance's shape, among them)."""
    for operation_id, operation in operations().items():
        if "requestBody" in operation.body:
            continue
        send = Send(None, operation=operation_id)
        title = f"{operation.method} {operation.path} ({operation_id}) with the key"
        yield Probe(f"reads.{operation_id}", "reads", title, "reads", (send,))


def _price_check(
    probes: list[Probe], reads: list[Probe], schema: Schema, base: dict[str, Any]
) -> list[Probe]:
    """The balance read before every probe and after them all, and between, one request that
    makes the plan cost a whole number of the balance's units (see _price)."""
    before = next(probe for probe in reads if probe.sends[0].operation == BALANCE)
    kept = [probe for probe in probes if probe is not before]
    price = total(probe.cost for probe in kept)
    aimed = top_up(price, schema, base)
    if aimed is not None:
        target, extra = aimed
        send = attrs.evolve(_paid(extra), worst_cost=target)  # sized when reached: at most that
        kept.append(
            Probe(
                "balance.whole_units",
                "balance",
                f"a request that brings what the run spent to a whole number of the balance's "
                f"units ({in_units(target)}, at least {MIN_UNITS}); as planned: "
                f"{extra['width']}x{extra['height']}, {extra['steps']} step(s), "
                f"{extra['image_num']} image(s)",
                "top_up",
                (send,),
                target=target,
            )
        )
    after = Probe(
        "balance.price",
        "balance",
        "the balance read again: did it drop by exactly the plan's price?",
        "price",
        (reading_send(),),
    )
    return [before, *kept, after]


# --- requests expected to generate images -------------------------------------------------------


def _bounds(schema: Schema, base: dict[str, Any]) -> Iterator[Probe]:
    yield _generating("bounds.cheapest", "bounds", "the cheapest request", base)
    for name, field in schema["properties"].items():
        if "enum" in field:
            continue
        if field.get("type") == "integer":
            for end in ("minimum", "maximum"):
                value = field[end]
                title = f"{name} at its {end}, {value}"
                yield _generating(f"bounds.{name}.{end[:3]}", "bounds", title, base | {name: value})
        elif field.get("type") == "string":
            shortest, longest = field.get("minLength", 0), field["maxLength"]
            yield _generating(
                f"bounds.{name}.min_length",
                "bounds",
                f"{name} of {shortest} character(s)",
                base | {name: _text(PROMPT, shortest)},
            )
            yield _generating(
                f"bounds.{name}.max_length",
                "bounds",
                f"{name} of {longest} characters",
                base | {name: _text(PROMPT + ", ", longest)},
            )
            multi = _text(MULTI_BYTE, longest)
            yield _generating(
                f"bounds.{name}.multi_byte",
                "bounds",
                f"{name} of {longest} multi-byte characters ({len(multi.encode())} bytes in UTF-8)",
                base | {name: multi},
            )


def _types(schema: Schema, base: dict[str, Any]) -> Iterator[Probe]:
    for name, field in schema["properties"].items():
        for value in field.get("enum", ()):
            yield _generating(f"types.{value}", "types", f"{name} {value}", base | {name: value})


def _generating(probe_id: str, group: str, title: str, body: dict[str, Any]) -> Probe:
    return Probe(probe_id, group, title, "generates", (_paid(body),))


def _paid(body: dict[str, Any]) -> Send:
    cost = estimate_cost(body["width"], body["height"], body["steps"], body["image_num"])
    return Send(body, cost=cost, worst_cost=cost)


def _merged(probes: list[Probe]) -> list[Probe]:
    """One probe per distinct request: a bound at the minimum is the cheapest request itself."""
    kept: dict[str, Probe] = {}
    for probe in probes:
        key = json.dumps(probe.sends[0].body, sort_keys=True)
        first = kept.get(key)
        if first is None:
            kept[key] = probe
        else:
            kept[key] = attrs.evolve(first, covers=(*first.covers, probe.title))
    return list(kept.values())


# --- requests expected to be refused ------------------------------------------------------------


def _invalid(schema: Schema, base: dict[str, Any]) -> Iterator[Probe]:
    """One request per way a field can be wrong (just past each bound, the wrong type, outside
    its enum) and one with a field the spec does not name."""
    for name, field in schema["properties"].items():
        for suffix, title, value in _wrong_values(name, field, base[name]):
            yield _refused(f"invalid.{name}.{suffix}", title, base | {name: value}, base)
    yield _refused(
        "invalid.unknown_field",
        f"a field the spec does not name, {UNKNOWN_FIELD}",
        base | {UNKNOWN_FIELD: 1},
        base,
    )


def _wrong_values(name: str, field: Schema, valid: Any) -> Iterator[tuple[str, str, Any]]:
    if "enum" in field:
        outside = next(
            v for v in (OUTSIDE_ENUM, *(v + "x" for v in field["enum"])) if v not in field["enum"]
        )
        yield "not_in_enum", f"{name} outside its enum, {outside!r}", outside
    elif field.get("type") == "integer":
        low, high = field["minimum"], field["maximum"]
        yield "below_min", f"{name} just below its minimum, {low - 1}", low - 1
        yield "above_max", f"{name} just past its maximum, {high + 1}", high + 1
    elif field.get("type") == "string":
        shortest, longest = field.get("minLength", 0), field["maxLength"]
        if shortest > 0:
            yield "too_short", f"{name} of {shortest - 1} characters", _text(PROMPT, shortest - 1)
        yield "too_long", f"{name} of {longest + 1} characters", _text(PROMPT + ", ", longest + 1)
    # The wrong JSON type: a number sent as a string of digits, a string sent as a number.
    wrong = str(valid) if field.get("type") == "integer" else 1
    yield "wrong_type", f"{name} of the wrong type, {json.dumps(wrong)}", wrong


def _refused(probe_id: str, title: str, body: Any, base: dict[str, Any]) -> Probe:
    reasons = frozenset({REFUSED_REASON})
    return Probe(probe_id, "invalid", title, "refused", (_unbilled(body, base, reasons),), reasons)


def _unbilled(body: Any, base: dict[str, Any], reasons: frozenset[str], auth: Auth = "key") -> Send:
    """A request the spec says is refused: free when every expected reason is `billed: never`;
    its worst case is its price should the server generate it anyway (a value that is not a
    whole number is priced as the base's)."""
    fields = body if isinstance(body, dict) else {}
    numbers = {
        name: fields[name] if type(fields.get(name)) is int else base[name] for name in PRICED
    }
    worst = request_cost(numbers)
    free = all(known_reasons()[reason].never_billed for reason in reasons)
    return Send(body, auth=auth, cost=Decimal(0) if free else worst, worst_cost=worst)


def _authentication(base: dict[str, Any]) -> Iterator[Probe]:
    reasons = frozenset(
        name for name, known in known_reasons().items() if known.kind == "authentication"
    )
    cases: tuple[tuple[str, Auth, str], ...] = (
        ("no_header", "none", "no Authorization header"),
        ("empty_bearer", "empty", "an empty bearer key (Authorization: Bearer)"),
        ("wrong_key", "wrong", "a key that is not a key"),
    )
    for suffix, auth, title in cases:
        send = _unbilled(base, base, reasons, auth)
        yield Probe(f"auth.{suffix}", "auth", title, "authentication", (send,), reasons)


# --- open questions and the rate limit ----------------------------------------------------------


def _questions(schema: Schema, base: dict[str, Any]) -> Iterator[Probe]:
    for name, field in schema["properties"].items():
        aliases = also_named(name)
        if not aliases or "enum" not in field:
            continue
        # Any type but the default tells whether a name is honoured; the last of the enum
        # (jpeg) is the one Novita's pages disagree over.
        asked = [value for value in field["enum"] if value != field.get("default")][-1]
        sends = [_paid(base | {name: asked})]
        for alias in aliases:
            without = {key: value for key, value in base.items() if key != name}
            sends.append(_paid(without | {alias: asked}))
        names = ", ".join((name, *aliases))
        yield Probe(
            f"questions.{name}_names",
            "questions",
            f"which name of the image-type field is honoured: {asked} asked under {names}",
            "format_field",
            tuple(sends),
        )
    if OMITTED in base:
        body = {key: value for key, value in base.items() if key != OMITTED}
        yield Probe(
            f"questions.{OMITTED}_omitted",
            "questions",
            f"whether a request without {OMITTED} is accepted",
            "seed_omitted",
            (_paid(body),),
        )
    yield Probe(
        "questions.same_seed_same_bytes",
        "questions",
        "whether the same seed and parameters give the same bytes",
        "same_bytes",
        (_paid(base), _paid(base)),
    )


def _rate_limit(schema: Schema, base: dict[str, Any]) -> Probe:
    """Enough of the largest cheap requests to cross the spec's per-minute limit from an empty
    window; the run stops sending at the first 429, so this is the most it can cost."""
    most = schema["properties"]["image_num"]["maximum"]
    limit = default_images_per_minute()
    count = math.ceil((limit + 1) / most)
    body = base | {"image_num": most}
    return Probe(
        "rate-limit.burst",
        "rate-limit",
        f"up to {count} requests of {most} images at once, to cross the limit of {limit} "
        "images a minute",
        "rate_limit",
        tuple(_paid(body) for _ in range(count)),
        frozenset({"RATE_LIMIT_EXCEEDED"}),
    )


# --- helpers ------------------------------------------------------------------------------------


def _text(seed: str, length: int) -> str:
    """`length` characters of `seed`, repeated as often as needed."""
    if length <= 0:
        return ""
    return (seed * (length // len(seed) + 1))[:length]
