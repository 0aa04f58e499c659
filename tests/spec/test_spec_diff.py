"""spec-diff classifies each kind of contract change from the client's side, with proof.

Every pair of contracts is made here from the first release, edited in memory (a kept release
never changes, so neither do these cases when the working spec moves on); no spec on disk is
touched. A proof is checked again with the overlay's validators, not taken on trust.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from novita_flux._schema import compile_schema, conform
from novita_flux._spec import GENERATE, request_schema_in, response_schema_in
from scripts.spec_diff import report as report_module
from scripts.spec_diff.changes import Kind, changes
from scripts.spec_diff.releases import Project, load
from scripts.spec_diff.report import Finding, Level, Report, compare

BASE = load(Project().released / "0.1.0.yaml")
EXAMPLES = 100  # per search; the command uses more
Edit = Callable[[dict[str, Any]], None]


def edited(edit: Edit) -> dict[str, Any]:
    new = copy.deepcopy(BASE)
    edit(new)
    return new


def schemas(spec: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = spec["components"]["schemas"]
    return found


def request_fields(spec: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = schemas(spec)["Flux1SchnellRequest"]["properties"]
    return fields


def compared(edit: Edit) -> tuple[Report, dict[str, Any]]:
    new = edited(edit)
    return compare(BASE, new, "old", "new", EXAMPLES), new


def only(report: Report, kind: Kind) -> Finding:
    """The one finding of `kind`, and nothing in any other category but words."""
    (finding,) = report.of(kind)
    others = [f for f in report.findings if f.change.kind not in (kind, Kind.DOCUMENTATION)]
    assert others == [], others
    return finding


def assert_refused(schema: dict[str, Any], value: Any, field: str) -> None:
    with pytest.raises(Exception, match=field) as refused:
        conform(schema, value)
    assert type(refused.value).__name__ == "SchemaViolation"


def assert_breaks_callers(finding: Finding, new: dict[str, Any], field: str) -> None:
    """The proof is a request the old contract accepts and the new one refuses at `field`."""
    assert finding.proof is not None, "a break without a counterexample"
    conform(compile_schema(request_schema_in(BASE, GENERATE), BASE), finding.proof.value)
    assert_refused(
        compile_schema(request_schema_in(new, GENERATE), new), finding.proof.value, field
    )


def assert_breaks_old_clients(finding: Finding, new: dict[str, Any], field: str) -> None:
    """The proof is a 200 body the new contract allows and the old client refuses."""
    assert finding.proof is not None, "a break without a counterexample"
    conform(compile_schema(response_schema_in(new, GENERATE), new), finding.proof.value)
    assert_refused(
        compile_schema(response_schema_in(BASE, GENERATE), BASE), finding.proof.value, field
    )


def test_narrowing_steps_to_50_breaks_callers() -> None:
    report, new = compared(lambda spec: request_fields(spec)["steps"].update(maximum=50))
    finding = only(report, Kind.BREAKING_FOR_CALLERS)
    assert (finding.change.where, finding.change.what) == (("steps",), "maximum 100 -> 50")
    assert_breaks_callers(finding, new, "steps")
    assert report.level is Level.BREAKING


def test_renaming_response_image_type_breaks_callers() -> None:
    def rename(spec: dict[str, Any]) -> None:
        fields = request_fields(spec)
        fields["response_image_format"] = fields.pop("response_image_type")

    report, new = compared(rename)
    finding = only(report, Kind.BREAKING_FOR_CALLERS)
    assert finding.change.where == ("response_image_type",)
    assert "renamed to 'response_image_format'" in finding.change.what
    assert_breaks_callers(finding, new, "response_image_type")


def test_a_new_required_request_field_breaks_callers() -> None:
    def require(spec: dict[str, Any]) -> None:
        request_fields(spec)["guidance"] = {"type": "number", "minimum": 0, "maximum": 10}
        schemas(spec)["Flux1SchnellRequest"]["required"].append("guidance")

    report, new = compared(require)
    finding = only(report, Kind.BREAKING_FOR_CALLERS)
    assert finding.change.where == ("guidance",)
    assert finding.change.what.startswith("new required field")
    assert_breaks_callers(finding, new, "guidance")


def test_removing_an_enum_value_breaks_callers() -> None:
    report, new = compared(lambda spec: schemas(spec)["ImageType"].update(enum=["png", "jpeg"]))
    finding = only(report, Kind.BREAKING_FOR_CALLERS)
    assert finding.change.what == "'webp' is no longer one of the choices"
    assert_breaks_callers(finding, new, "response_image_type")
    assert finding.proof is not None
    assert finding.proof.value["response_image_type"] == "webp"


def test_a_ttl_that_may_be_any_string_breaks_old_clients() -> None:
    def string_only(spec: dict[str, Any]) -> None:
        schemas(spec)["Image"]["properties"]["image_url_ttl"] = {"type": "string"}

    report, new = compared(string_only)
    (finding,) = report.of(Kind.BREAKING_FOR_OLD_CLIENTS)
    assert finding.change.where == ("images", "[]", "image_url_ttl")
    assert_breaks_old_clients(finding, new, "image_url_ttl")
    # Integers are no longer sent: the old client, which reads both, does not mind.
    (dropped,) = report.of(Kind.COMPATIBLE)
    assert dropped.change.what == "an integer >= 0 is no longer accepted"
    assert report.of(Kind.BREAKING_FOR_CALLERS) == []


def test_a_ttl_narrowed_to_digit_strings_is_compatible_for_old_clients() -> None:
    def digits_only(spec: dict[str, Any]) -> None:
        ttl = schemas(spec)["Image"]["properties"]["image_url_ttl"]
        ttl.update(ttl.pop("oneOf")[1])

    report, _ = compared(digits_only)
    assert report.level is Level.COMPATIBLE
    assert [f.change.what for f in report.of(Kind.COMPATIBLE)] == [
        "an integer >= 0 is no longer accepted"
    ]


def test_a_new_optional_request_field_is_a_compatible_addition() -> None:
    def add(spec: dict[str, Any]) -> None:
        request_fields(spec)["guidance"] = {"type": "number", "minimum": 0, "maximum": 10}

    report, _ = compared(add)
    finding = only(report, Kind.COMPATIBLE)
    assert finding.change.what == "new optional field: a number in [0, 10]"
    assert finding.proof is None
    assert report.level is Level.COMPATIBLE


def test_a_changed_description_is_documentation_only() -> None:
    report, _ = compared(lambda spec: request_fields(spec)["steps"].update(description="Steps."))
    (finding,) = report.findings
    assert finding.change.kind is Kind.DOCUMENTATION
    assert "Flux1SchnellRequest.properties.steps.description changed" in finding.change.what
    assert report.level is Level.DOCUMENTATION


def test_an_unchanged_contract_has_nothing_to_report_and_both_checks_ran() -> None:
    report = compare(BASE, copy.deepcopy(BASE), "old", "new", EXAMPLES)
    assert report.findings == ()
    assert report.level is Level.NONE
    assert report.searches == (
        f"requests: {EXAMPLES} drawn from old, put to new's validator: none refused",
        f"200 response bodies: {EXAMPLES} drawn from new, put to old's validator: none refused",
    )


def test_a_pattern_that_admits_a_new_image_type_is_proven_to_break_old_clients() -> None:
    # A changed regular expression cannot be decided by reading: a drawn value decides it.
    def admit_gif(spec: dict[str, Any]) -> None:
        image_type = schemas(spec)["ResponseImageType"]
        image_type["pattern"] = image_type["pattern"].replace(")$", "|[Gg][Ii][Ff])$")

    report, new = compared(admit_gif)
    finding = only(report, Kind.BREAKING_FOR_OLD_CLIENTS)
    assert_breaks_old_clients(finding, new, "image_type")
    assert finding.proof is not None
    assert "gif" in {image["image_type"].lower() for image in finding.proof.value["images"]}


def test_a_pattern_rewritten_to_mean_the_same_is_compatible() -> None:
    def rewrite(spec: dict[str, Any]) -> None:
        image_type = schemas(spec)["ResponseImageType"]
        image_type["pattern"] = image_type["pattern"].replace(
            "[Jj][Pp][Ee]?[Gg]", "[Jj][Pp][Gg]|[Jj][Pp][Ee][Gg]"
        )

    report, _ = compared(rewrite)
    finding = only(report, Kind.COMPATIBLE)
    assert finding.change.what.startswith("pattern ")
    assert f"no value in {EXAMPLES} tries" in finding.note


def test_a_pattern_is_read_as_ecma_262_so_backslash_d_is_ascii_s_digits_alone() -> None:
    # Under Python's re, `\\d` takes any Unicode digit: spec-diff "proved" old clients broken
    # with a TTL of "\u0660" (ARABIC-INDIC DIGIT ZERO). Under JSON Schema's reading the two
    # patterns accept the same strings.
    def rewrite(spec: dict[str, Any]) -> None:
        ttl = schemas(spec)["Image"]["properties"]["image_url_ttl"]
        ttl["oneOf"][1]["pattern"] = "^\\d+$"

    report, _ = compared(rewrite)
    finding = only(report, Kind.COMPATIBLE)
    assert finding.change.what == "pattern '^[0-9]+$' -> '^\\\\d+$'"
    assert f"no value in {EXAMPLES} tries" in finding.note


def images_bounds(spec: dict[str, Any], **bounds: int) -> None:
    schemas(spec)["Flux1SchnellResponse"]["properties"]["images"].update(bounds)


def test_bounding_the_number_of_images_is_compatible_for_old_clients() -> None:
    report, _ = compared(lambda spec: images_bounds(spec, minItems=1, maxItems=8))
    assert [f.change.what for f in report.of(Kind.COMPATIBLE)] == [
        "minItems 0 -> 1",
        "maxItems none -> 8",
    ]
    assert report.level is Level.COMPATIBLE


def test_a_200_allowed_more_images_is_proven_to_break_old_clients() -> None:
    old = edited(lambda spec: images_bounds(spec, minItems=1, maxItems=8))
    new = copy.deepcopy(old)
    images_bounds(new, maxItems=9)
    report = compare(old, new, "old", "new", EXAMPLES)
    finding = only(report, Kind.BREAKING_FOR_OLD_CLIENTS)
    assert (finding.change.where, finding.change.what) == (("images",), "maxItems 8 -> 9")
    assert finding.proof is not None
    assert len(finding.proof.value["images"]) == 9
    assert finding.proof.refusal.startswith("images: [")
    assert finding.proof.refusal.endswith("is not an array of 1 to 8 items")


def test_a_required_response_field_dropped_breaks_old_clients() -> None:
    report, new = compared(
        lambda spec: schemas(spec)["Flux1SchnellResponse"]["required"].remove("task")
    )
    finding = only(report, Kind.BREAKING_FOR_OLD_CLIENTS)
    assert (finding.change.where, finding.change.what) == (("task",), "is no longer required")
    assert_breaks_old_clients(finding, new, "task")


def test_a_break_the_reading_misses_is_still_found_by_the_hypothesis_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(report_module, "changes", lambda old, new: [])  # a differ that sees nothing
    report, new = compared(lambda spec: request_fields(spec)["steps"].update(maximum=50))
    finding = only(report, Kind.BREAKING_FOR_CALLERS)
    assert finding.change.what.startswith("found by the hypothesis check only: steps:")
    assert_breaks_callers(finding, new, "steps")


def test_a_changed_default_breaks_callers_that_leave_the_field_out() -> None:
    new = edited(lambda spec: request_fields(spec)["response_image_type"].update(default="webp"))
    (change,) = changes(BASE, new)
    assert change.kind is Kind.BREAKING_FOR_CALLERS
    assert change.what == "default 'png' -> 'webp': a body without it now means 'webp'"


def test_the_error_envelope_s_changes_are_listed_once_for_every_status() -> None:
    def widen_code(spec: dict[str, Any]) -> None:
        envelope = schemas(spec)["ErrorResponse"]["properties"]
        envelope["code"].update(oneOf=[{"type": "integer"}, {"type": "string"}])
        del envelope["code"]["type"]

    (change,) = changes(BASE, edited(widen_code))
    assert change.kind is Kind.BREAKING_FOR_OLD_CLIENTS
    assert change.part == "responses 400, 401, 403, 404, 429, 500, 503"
    assert (change.where, change.what) == (("code",), "a string is accepted too")


def _with_status(status: str) -> Edit:
    def add(spec: dict[str, Any]) -> None:
        responses = spec["paths"]["/v3beta/flux-1-schnell"]["post"]["responses"]
        responses[status] = copy.deepcopy(responses["200" if status < "400" else "400"])

    return add


def _without_the_image_type_model(spec: dict[str, Any]) -> None:
    del schemas(spec)["ImageType"]  # novita_flux_api.models.ImageType goes with it
    reference = request_fields(spec)["response_image_type"]["allOf"][0]
    reference["$ref"] = "#/components/schemas/ResponseImageType"


@pytest.mark.parametrize(
    ("edit", "kind", "words"),
    [
        (
            lambda s: s["info"]["x-pricing"].update(coefficient="0.004"),
            Kind.COMPATIBLE,
            "x-pricing",
        ),
        (
            lambda s: s.update(paths={"/v3/flux-1-schnell": s["paths"].popitem()[1]}),
            Kind.BREAKING_FOR_CALLERS,
            "POST /v3/flux-1-schnell",
        ),
        (
            lambda s: s["paths"]["/v3beta/flux-1-schnell"]["post"].update(operationId="generate"),
            Kind.BREAKING_FOR_CALLERS,
            "operationId",
        ),
        (
            lambda s: s["servers"][0].update(url="https://api.novita.ai/v4"),
            Kind.BREAKING_FOR_CALLERS,
            "servers",
        ),
        (_without_the_image_type_model, Kind.BREAKING_FOR_CALLERS, "schema ImageType removed"),
        (_with_status("202"), Kind.BREAKING_FOR_OLD_CLIENTS, "new status 202"),
        (_with_status("409"), Kind.COMPATIBLE, "newly documented status 409"),
        (lambda s: s.update(openapi="3.1.0"), Kind.NOT_UNDERSTOOD, "openapi"),
        (lambda s: s["info"].update(title="FLUX"), Kind.DOCUMENTATION, "info.title"),
    ],
    ids=[
        "price",
        "path",
        "operation-id",
        "server",
        "model-removed",
        "success-status",
        "error-status",
        "openapi-version",
        "title",
    ],
)
def test_changes_outside_the_bodies_are_classified(edit: Edit, kind: Kind, words: str) -> None:
    found = [change for change in changes(BASE, edited(edit)) if words in change.what]
    assert found, changes(BASE, edited(edit))
    assert {change.kind for change in found} == {kind}


def test_a_bound_moved_by_one_is_proven_at_the_bound() -> None:
    # Values are drawn at their bounds as often as between them, so the one value that tells
    # the two contracts apart is tried, not hoped for.
    report, new = compared(lambda spec: request_fields(spec)["width"].update(maximum=2047))
    finding = only(report, Kind.BREAKING_FOR_CALLERS)
    assert_breaks_callers(finding, new, "width")
    assert finding.proof is not None
    assert finding.proof.value["width"] == 2048


# --- a contract with more than one operation ----------------------------------------------------

WORKING = load(Project().spec)


def test_the_balance_operation_is_a_compatible_addition_to_the_first_release() -> None:
    report = compare(BASE, WORKING, "released 0.1.0", "working", EXAMPLES)
    (added,) = [f for f in report.findings if f.change.what.startswith("new operation")]
    assert added.change.kind is Kind.COMPATIBLE
    assert added.change.what.startswith(
        "new operation balanceDetail: GET /openapi/v1/billing/balance/detail"
    )
    assert report.level is Level.COMPATIBLE
    assert not report.of(Kind.NOT_UNDERSTOOD)


def test_an_operation_removed_breaks_callers() -> None:
    report = compare(WORKING, BASE, "working", "released 0.1.0", EXAMPLES)
    (removed,) = [f for f in report.findings if "removed: the released client" in f.change.what]
    assert removed.change.kind is Kind.BREAKING_FOR_CALLERS
    assert removed.change.what.startswith("operation balanceDetail (GET /openapi/v1/")
    assert report.level is Level.BREAKING


def test_an_operation_renamed_but_at_the_same_path_is_one_breaking_rename() -> None:
    new = copy.deepcopy(WORKING)
    new["paths"]["/openapi/v1/billing/balance/detail"]["get"]["operationId"] = "getBalance"
    found = changes(WORKING, new)
    assert [(c.kind, c.what.split(":")[0]) for c in found] == [
        (Kind.BREAKING_FOR_CALLERS, "operations.getBalance.operationId")
    ]


def test_a_second_operation_s_answer_is_compared_and_proven_under_its_own_name() -> None:
    new = copy.deepcopy(WORKING)
    amount = new["components"]["schemas"]["BalanceAmount"]
    amount["oneOf"][0]["pattern"] = "^-?[0-9]+(\\.[0-9]+)?$"  # fractions of a unit too
    report = compare(WORKING, new, "old", "new", EXAMPLES)
    broken = report.of(Kind.BREAKING_FOR_OLD_CLIENTS)
    assert {f.change.part for f in broken} == {"balanceDetail 200 response"}
    assert ("availableBalance",) in {f.change.where for f in broken}
    for finding in broken:
        assert finding.proof is not None
        body = finding.proof.value
        conform(compile_schema(response_schema_in(new, "balanceDetail"), new), body)
        old = compile_schema(response_schema_in(WORKING, "balanceDetail"), WORKING)
        assert_refused(old, body, finding.change.where[0])
    assert "balanceDetail 200 response bodies" in " ".join(report.searches)
