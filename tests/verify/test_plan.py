"""The verification plan: drawn from the spec, cheapest where it can be, and priced exactly."""

from __future__ import annotations

import copy
from decimal import Decimal

import pytest

from novita_flux import _spec, estimate_cost
from novita_flux._request import compiled_request_schema
from novita_flux._spec import default_images_per_minute, known_reasons
from novita_flux.verify import GROUPS, Plan, Probe, build_plan
from novita_flux.verify._price import MIN_UNITS, in_units
from novita_flux.verify._report import plan_text

SCHEMA = compiled_request_schema()
FIELDS = SCHEMA["properties"]
PRICED = ("width", "height", "steps", "image_num")


def generating_bodies(plan) -> list[dict]:
    return [
        send.body
        for probe in plan.probes
        if probe.check in ("generates", "same_bytes")
        for send in probe.sends
    ]


def test_every_bound_of_every_field_is_sent_in_a_request_expected_to_succeed() -> None:
    bodies = generating_bodies(build_plan())
    for name, field in FIELDS.items():
        sent = [body[name] for body in bodies]
        if field["type"] == "integer":
            assert field["minimum"] in sent, name
            assert field["maximum"] in sent, name
        elif "enum" in field:
            assert set(field["enum"]) <= set(sent), name
        else:  # the prompt: shortest, longest, and one of multi-byte characters
            lengths = {len(text) for text in sent}
            assert {field["minLength"], field["maxLength"]} <= lengths
            longest = [text for text in sent if len(text) == field["maxLength"]]
            assert any(len(text.encode()) > len(text) for text in longest)


def generating(plan: Plan) -> list[Probe]:
    """The probes that send a generation (not a read of the balance)."""
    return [p for p in plan.probes if all(s.operation == _spec.GENERATE for s in p.sends)]


def test_requests_stay_at_the_cheapest_size_except_in_the_field_under_test() -> None:
    for probe in build_plan().probes:
        if probe.cost == 0 or probe.group == "balance":
            # Refused probes: their out-of-range values are the point. The whole-units request
            # is sized to the plan's price.
            continue
        # bounds.<field>.max is about that field; every other probe is about none of them.
        under_test = {probe.id.split(".")[1]} if probe.group == "bounds" else set()
        for send in probe.sends:
            above = {name for name in PRICED if send.body[name] != FIELDS[name]["minimum"]}
            assert above <= under_test, probe.id


def test_one_invalid_value_per_way_a_field_can_be_wrong_each_expecting_a_400() -> None:
    probes = {probe.id: probe for probe in build_plan().probes if probe.group == "invalid"}
    for name, field in FIELDS.items():
        sent = [
            probe.sends[0].body[name]
            for key, probe in probes.items()
            if key.startswith(f"invalid.{name}.")
        ]
        if field["type"] == "integer":
            assert {field["minimum"] - 1, field["maximum"] + 1} <= set(sent)
            assert any(isinstance(v, str) for v in sent)  # the wrong type
        elif "enum" in field:
            assert any(isinstance(v, str) and v not in field["enum"] for v in sent)
            assert any(not isinstance(v, str) for v in sent)
        else:
            assert {field["minLength"] - 1, field["maxLength"] + 1} <= {
                len(v) for v in sent if isinstance(v, str)
            }
            assert any(not isinstance(v, str) for v in sent)
    assert any(set(p.sends[0].body) - set(FIELDS) for p in probes.values())
    for probe in probes.values():
        assert probe.reasons == {"INVALID_REQUEST_BODY"}
        assert probe.cost == 0  # the spec says a refused body is never billed


def test_the_plan_follows_the_spec_when_a_range_changes() -> None:
    narrower = copy.deepcopy(SCHEMA)
    narrower["properties"]["width"]["maximum"] = 1024
    plan = build_plan(schema=narrower)
    widths = {send.body["width"] for probe in generating(plan) for send in probe.sends}
    assert 1024 in widths
    assert 1025 in widths  # just past the new maximum
    assert 2048 not in widths
    assert 2049 not in widths


def test_the_three_authentication_cases_and_the_open_questions_are_probes() -> None:
    plan = build_plan()
    auth = {probe.sends[0].auth for probe in plan.probes if probe.group == "auth"}
    assert auth == {"none", "empty", "wrong"}
    checks = {probe.check for probe in plan.probes if probe.group == "questions"}
    assert checks == {"format_field", "seed_omitted", "same_bytes"}
    (names,) = [probe for probe in plan.probes if probe.check == "format_field"]
    asked = [send.body for send in names.sends]
    assert asked[0]["response_image_type"] == "jpeg"
    assert asked[1]["response_image_format"] == "jpeg"
    assert "response_image_type" not in asked[1]
    (omitted,) = [probe for probe in plan.probes if probe.check == "seed_omitted"]
    assert "seed" not in omitted.sends[0].body


def test_the_price_is_the_sum_of_estimate_cost_over_what_the_spec_says_is_billed() -> None:
    plan = build_plan(probe_rate_limit=True)
    expected = Decimal(0)
    for probe in generating(plan):
        billed = probe.group not in ("invalid", "auth")
        for send in probe.sends:
            body = send.body
            if billed:
                expected += estimate_cost(
                    body["width"], body["height"], body["steps"], body["image_num"]
                )
    assert plan.price == expected
    assert plan.price < Decimal("0.01")
    assert plan.worst_case > plan.price  # should the refused requests be billed after all
    assert f"price: ${plan.price} " in plan_text(plan, 10)


def test_the_rate_limit_probe_crosses_the_spec_limit_only_when_asked_for() -> None:
    assert all(probe.group != "rate-limit" for probe in build_plan().probes)
    assert [p.group for p in build_plan(groups=["rate-limit"]).probes] == ["rate-limit"]
    (probe,) = [p for p in build_plan(probe_rate_limit=True).probes if p.group == "rate-limit"]
    assert sum(send.images for send in probe.sends) > default_images_per_minute()
    assert probe.reasons == {"RATE_LIMIT_EXCEEDED"}
    assert known_reasons()["RATE_LIMIT_EXCEEDED"].status == 429


def test_groups_select_probes_and_unknown_groups_are_refused() -> None:
    plan = build_plan(groups=["auth"])
    assert {probe.group for probe in plan.probes} == {"auth"}
    assert plan.price == 0
    with pytest.raises(ValueError, match="bogus"):
        build_plan(groups=["bogus"])
    assert set(GROUPS) >= {probe.group for probe in build_plan(probe_rate_limit=True).probes}


# --- the balance and the price check ------------------------------------------------------------


@pytest.mark.parametrize("rate_limit", [False, True])
def test_the_plan_costs_a_whole_number_of_the_balance_s_units_and_enough_of_them(
    rate_limit: bool,
) -> None:
    plan = build_plan(probe_rate_limit=rate_limit)
    units = in_units(plan.price)
    assert units == units.to_integral_value()
    assert units >= MIN_UNITS
    # Without the whole-units request the plan is a few units and a fraction: too coarse.
    without = build_plan(groups=[g for g in GROUPS if g != "balance"])
    assert in_units(without.price) != in_units(without.price).to_integral_value()


def test_the_balance_is_read_first_and_last_around_the_whole_units_request() -> None:
    for groups in (None, ["balance"]):
        probes = build_plan(groups=groups).probes
        assert probes[0].id == f"reads.{_spec.BALANCE}"
        assert [probe.id for probe in probes[-2:]] == ["balance.whole_units", "balance.price"]
        assert probes[-1].sends[0].operation == _spec.BALANCE
    # The whole-units request is sized when it is reached: at worst it costs the whole target.
    (top_up,) = [probe for probe in build_plan().probes if probe.check == "top_up"]
    assert top_up.target is not None
    assert top_up.sends[0].cost < top_up.worst_cost == top_up.target


def test_every_operation_that_takes_no_body_is_read_once_and_costs_nothing() -> None:
    reads = [probe for probe in build_plan().probes if probe.group == "reads"]
    bodiless = [key for key, op in _spec.operations().items() if "requestBody" not in op.body]
    assert [probe.sends[0].operation for probe in reads] == bodiless
    assert all(probe.cost == probe.worst_cost == 0 for probe in reads)
