"""The price formula checked against the account: the balance read before the probes and after
them, and the drop compared with the exact price of what the run generated.

The balance counts whole units of 1/10000 USD (the spec's `x-unit`) and the cheapest image costs
about 0.03 of one, so a plan of cheap probes (about 5 units) could only be compared to within a
unit. The plan is therefore topped up with one request priced so that the billed requests cost a
whole number of units, and at least MIN_UNITS: a balance kept exactly and reported to the unit
then drops by exactly that number, and one unit more or less is a deviation. Which questions are
billed is known only once they are answered (a server may refuse a request without a seed), so
the top-up is sized when it is reached, from what the run has spent by then; its worst case is
the whole target. Comparing with rounding each task's price (up, down, to the nearest unit)
tells how the API appears to round.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, localcontext
from typing import Any, Final

import attrs

from novita_flux._balance import Balance, parse_balance
from novita_flux._errors import NovitaError
from novita_flux._format import usd
from novita_flux._request import request_cost
from novita_flux._spec import BALANCE, Schema, amount_fields, pricing
from novita_flux.verify._exchange import Attempt
from novita_flux.verify._judge import answer_line
from novita_flux.verify._probes import Probe, Send, total
from novita_flux.verify._report import Finding, Kind, ProbeResult

MIN_UNITS: Final = 10  # a one-unit deviation is then at most a tenth of what is compared
FIELD: Final = "availableBalance"  # what can still be spent: what a billed task lowers
PENDING: Final = "pendingCharges"
LOOKED_AT: Final = 1000  # whole-unit totals tried for one that a single request reaches

History = Sequence[tuple[ProbeResult, Sequence[Attempt]]]


def unit() -> Decimal:
    """USD in one unit of the balance (0.0001)."""
    return amount_fields(BALANCE)[FIELD].value


def in_units(amount: Decimal) -> Decimal:
    with localcontext() as context:
        context.prec = 80
        return (amount / unit()).normalize()


# --- the plan -----------------------------------------------------------------------------------


def top_up(
    price: Decimal, schema: Schema, base: dict[str, Any]
) -> tuple[Decimal, dict[str, Any]] | None:
    """The target (in USD: a whole number of units, at least MIN_UNITS) and a request (the base
    with other sizes) costing exactly what brings `price` to it; None when no single request
    can."""
    start = max(MIN_UNITS, math.ceil(in_units(price)))
    for units in range(start, start + LOOKED_AT):
        target = units * unit()
        body = _priced_at(target - price, schema, base)
        if body is not None:
            return target, body
    return None


def sized(probe: Probe, spent: Decimal, schema: Schema) -> Probe:
    """A top-up probe with its request sized to bring `spent` to its target; as planned when no
    single request can (the check then compares to within a unit)."""
    if probe.target is None:
        return probe
    (send,) = probe.sends
    body = _priced_at(probe.target - spent, schema, send.body)
    if body is None:
        return probe
    cost = request_cost(body)
    return attrs.evolve(probe, sends=(attrs.evolve(send, body=body, cost=cost),))


def _priced_at(amount: Decimal, schema: Schema, base: dict[str, Any]) -> dict[str, Any] | None:
    """A request costing exactly `amount`, by the spec's formula, within the spec's ranges."""
    price = pricing()
    with localcontext() as context:
        context.prec = 80
        pixel_steps = amount * price.pixel_steps_unit / price.coefficient
    if pixel_steps <= 0 or pixel_steps != pixel_steps.to_integral_value():
        return None
    wanted = int(pixel_steps)
    fields = schema["properties"]
    low_side, high_side = fields["width"]["minimum"], fields["width"]["maximum"]
    low_height, high_height = fields["height"]["minimum"], fields["height"]["maximum"]
    for images in range(fields["image_num"]["minimum"], fields["image_num"]["maximum"] + 1):
        for steps in range(fields["steps"]["minimum"], fields["steps"]["maximum"] + 1):
            if wanted % (images * steps):
                continue
            pixels = wanted // (images * steps)
            for width in _divisors_between(pixels, low_side, high_side):
                height = pixels // width
                if low_height <= height <= high_height:
                    body = base | {
                        "width": width,
                        "height": height,
                        "steps": steps,
                        "image_num": images,
                    }
                    assert request_cost(body) == amount
                    return body
    return None


def _divisors_between(number: int, low: int, high: int) -> Iterator[int]:
    """The divisors of `number` in [low, high], largest first (the squarest image last)."""
    for candidate in range(min(high, number), low - 1, -1):
        if number % candidate == 0:
            yield candidate


# --- the judgement ------------------------------------------------------------------------------


def judge_price(probe: Probe, attempts: Sequence[Attempt], history: History) -> ProbeResult:
    """The balance after the probes against the balance before them and what the run spent."""
    before_attempt = _first_reading(history)
    billed = [
        attempt
        for result, done in history
        for attempt in done
        if attempt.status == 200 and attempt.send.operation != BALANCE
    ]
    spent = total(result.spent for result, _ in history)
    answer = _compared(before_attempt, attempts[-1] if attempts else None, billed, spent)
    kind, where, spec, got = answer
    finding = Finding(kind, where, spec, got)
    summary = got if kind == "answered" else f"deviates: {got}"
    return ProbeResult(probe, (finding,), summary)


def _first_reading(history: History) -> Attempt | None:
    for _, attempts in history:
        for attempt in attempts:
            if attempt.send.operation == BALANCE:
                return attempt
    return None


def _compared(
    before_attempt: Attempt | None,
    after_attempt: Attempt | None,
    billed: Sequence[Attempt],
    spent: Decimal,
) -> tuple[Kind, str, str, str]:
    where = "the balance's drop"
    before, why = _reading(before_attempt, "before the probes")
    after, why_after = _reading(after_attempt, "after them")
    if before is None or after is None:
        return "answered", where, "", f"could not tell: {why or why_after}"
    drop = before.units[FIELD] - after.units[FIELD]
    expected = in_units(spent)
    per_task = [in_units(attempt.send.cost or attempt.send.worst_cost) for attempt in billed]
    said = f"the price of the {len(billed)} billed request(s), {_units(expected)} (${usd(spent)})"
    rounding = _rounding(drop, expected, per_task)
    pending = [
        reading.units.get(PENDING, 0) for reading in (before, after) if reading.units.get(PENDING)
    ]
    if Decimal(drop) == expected:
        return (
            "answered",
            where,
            "",
            f"the balance dropped by exactly the plan's price: {_units(expected)} "
            f"(${usd(spent)}), the sum of estimate_cost over the {len(billed)} billed "
            f"request(s); {rounding}",
        )
    if expected != expected.to_integral_value() and abs(Decimal(drop) - expected) < 1:
        return (
            "answered",
            where,
            "",
            f"the balance dropped by {_units(drop)}, {said} to within the balance's resolution "
            f"of one unit; {rounding}",
        )
    if pending or (drop == 0 and expected > 0):
        late = (
            f"pendingCharges says {', then '.join(map(str, pending))} unit(s)"
            if pending
            else "it did not move"
        )
        return (
            "answered",
            where,
            "",
            f"could not tell: the balance dropped by {_units(drop)} against {said}, and {late}: "
            "the charges may show up later",
        )
    return (
        "deviates",
        where,
        f"a drop of {said} (the spec's x-pricing)",
        f"a drop of {_units(drop)} ({rounding})",
    )


def _reading(attempt: Attempt | None, when: str) -> tuple[Balance | None, str]:
    if attempt is None:
        return None, f"the balance was not read {when}"
    if attempt.exchange is None:
        return None, f"the balance could not be read {when}: {attempt.failure}"
    if attempt.exchange.status != 200:
        return None, f"the balance could not be read {when}: {answer_line(attempt.exchange)}"
    try:
        return parse_balance(attempt.exchange.response()), ""
    except NovitaError as error:
        return None, f"the balance could not be read {when}: {error}"


def _rounding(drop: int, expected: Decimal, per_task: Sequence[Decimal]) -> str:
    """How the API appears to round, from which way of pricing the tasks gives the drop."""
    ways = {
        "each price kept exact, to fractions of a unit": expected,
        "each task rounded up to a whole unit": _rounded(per_task, ROUND_CEILING),
        "each task rounded down to a whole unit": _rounded(per_task, ROUND_FLOOR),
        "each task rounded to the nearest unit": _rounded(per_task, ROUND_HALF_UP),
    }
    matching = [
        way
        for way, units in ways.items()
        if Decimal(drop) == units
        or (units != units.to_integral_value() and abs(Decimal(drop) - units) < 1)
    ]
    if not matching:
        return "no rounding of the tasks' prices to a unit gives that drop either"
    if len(matching) == len(ways):
        return "these prices cannot tell how the API rounds"
    return "the drop fits " + ", or ".join(matching)


def _rounded(prices: Sequence[Decimal], rounding: str) -> Decimal:
    return sum((price.to_integral_value(rounding=rounding) for price in prices), Decimal(0))


def _units(amount: Decimal | int) -> str:
    return f"{format(Decimal(amount).normalize(), 'f')} unit(s)"


def reading_send() -> Send:
    """The balance read with the key: free."""
    return Send(None, operation=BALANCE)
