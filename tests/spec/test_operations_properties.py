"""Every operation of the spec, fuzzed from its own response schema: whatever the API answers,
the client reads a conforming 200, refuses any other as a ResponseValidationError, maps every
error answer to a typed error, and says `possibly_billed` only of what may have been billed
(never of an operation the spec marks `x-billed: never`). The tests are parametrized by the
spec's operations: a new operation runs them too, and fails until CALLS says how to call it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from decimal import Decimal, localcontext
from typing import Any

import httpx
import pytest
import respx
from hypothesis import example, given
from hypothesis import strategies as st

from novita_flux import (
    APIStatusError,
    Balance,
    FluxSchnell,
    Generation,
    ResponseValidationError,
    _retry,
    _spec,
)
from tests.strategies import (
    conforming_bodies,
    documented_error_answers,
    error_answers,
    nonconforming_bodies,
)
from tests.support import KEY, Sleeps

OPERATIONS = list(_spec.operations())
# How the client calls each operation of the spec, and reads what it returns.
CALLS: dict[str, Callable[[FluxSchnell], Any]] = {
    _spec.GENERATE: lambda flux: flux.generate("a fox", width=64, height=64, seed=1),
    _spec.BALANCE: lambda flux: flux.balance(),
}
RETRIES = 2


@pytest.fixture(scope="module")
def flux() -> Iterator[FluxSchnell]:
    with FluxSchnell(api_key=KEY, max_retries=RETRIES) as client:
        yield client


@pytest.fixture(scope="module", autouse=True)
def sleeps() -> Iterator[Sleeps]:
    """No real waiting: every backoff is recorded instead (cleared by the test that counts)."""
    recorder = Sleeps()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_retry, "sleep", recorder)
        yield recorder


def called(operation_id: str) -> Callable[[FluxSchnell], Any]:
    if operation_id not in CALLS:
        pytest.fail(f"the spec's operation {operation_id} has no client call in CALLS", False)
    return CALLS[operation_id]


def answered(flux: FluxSchnell, operation_id: str, *responses: httpx.Response) -> tuple[Any, int]:
    """Call the operation against these answers, in turn; what it returned (or raised), and how
    many requests it sent."""
    operation = _spec.operation(operation_id)
    with respx.mock as router:
        route = router.route(method=operation.method, url=flux.base_url + operation.path)
        route.side_effect = list(responses)
        try:
            result: Any = called(operation_id)(flux)
        except Exception as error:
            result = error
        return result, route.call_count


def read_as_the_spec_says(operation_id: str, body: dict[str, Any], result: Any) -> None:
    if isinstance(result, Generation):
        assert result.task_id == body["task"]["task_id"]
        assert result.raw == body
        return
    assert isinstance(result, Balance), result
    unit = _spec.amount_fields(operation_id)["availableBalance"].value

    def usd(units: Any) -> Decimal:
        with localcontext() as context:  # exact, however many digits
            context.prec = 100
            return int(units) * unit

    assert result.available_balance == usd(body["availableBalance"])
    assert result.outstanding_invoices == usd(body["outstandingInvoices"])
    pending = body.get("pendingCharges")
    assert result.pending_charges == (None if pending is None else usd(pending))
    assert result.units == {
        name: int(body[name]) for name in _spec.amount_fields(operation_id) if name in body
    }
    assert Decimal(result.as_dict()["available_balance"]) == result.available_balance
    assert result.raw == body  # what the spec does not name is kept


@pytest.mark.parametrize("operation_id", OPERATIONS)
@given(data=st.data())
def test_a_conforming_answer_is_read_without_loss(
    flux: FluxSchnell, operation_id: str, data: st.DataObject
) -> None:
    body = data.draw(conforming_bodies(operation_id))
    result, sent = answered(flux, operation_id, httpx.Response(200, json=body))
    assert sent == 1
    read_as_the_spec_says(operation_id, body, result)


def test_the_balance_docs_example_and_the_older_page_s_are_read() -> None:
    example = _spec.response_example(_spec.BALANCE)
    older = {key: value for key, value in example.items() if key != "pendingCharges"}
    as_numbers = {key: int(value) for key, value in example.items()} | {"currency": "USD"}
    with FluxSchnell(api_key=KEY) as flux:
        for body in (example, older, as_numbers):
            result, _ = answered(flux, _spec.BALANCE, httpx.Response(200, json=body))
            read_as_the_spec_says(_spec.BALANCE, body, result)
    assert result.available_balance == Decimal("100.0000")


@pytest.mark.parametrize("operation_id", OPERATIONS)
@given(data=st.data())
def test_a_nonconforming_answer_is_a_response_validation_error(
    flux: FluxSchnell, operation_id: str, data: st.DataObject
) -> None:
    content = data.draw(nonconforming_bodies(operation_id))
    result, sent = answered(flux, operation_id, httpx.Response(200, content=content))
    assert isinstance(result, ResponseValidationError), result
    assert sent == 1  # a 200 is never sent again
    assert result.possibly_billed is not _spec.operation(operation_id).free


@pytest.mark.parametrize("operation_id", OPERATIONS)
@given(data=st.data())
@example(data=None)  # replaced below by the spec's own examples, one by one
def test_an_error_answer_is_a_typed_error_billed_only_where_it_may_be(
    flux: FluxSchnell,
    operation_id: str,
    data: st.DataObject | None,
    sleeps: Sleeps,
) -> None:
    answers = documented_error_answers() if data is None else [data.draw(error_answers())]
    free = _spec.operation(operation_id).free
    for status, content, _ in answers:
        result, sent = answered(
            flux, operation_id, *[httpx.Response(status, content=content)] * (RETRIES + 1)
        )
        assert isinstance(result, APIStatusError), result
        assert result.status_code == status
        if free:  # free: never billed, and every answer that may pass is tried again
            assert not result.possibly_billed
            assert "billed" not in str(result)
            passes = status in (408, 429) or status >= 500
            assert sent == (RETRIES + 1 if passes else 1), (status, sent)


@pytest.mark.parametrize("operation_id", [op for op in OPERATIONS if _spec.operation(op).free])
@pytest.mark.parametrize(
    "failure", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.ReadError("cut")]
)
def test_a_free_operation_is_tried_again_after_any_transport_failure(
    flux: FluxSchnell, operation_id: str, failure: Exception, sleeps: Sleeps
) -> None:
    body = json.loads(json.dumps(_spec.response_example(operation_id)))
    sleeps.clear()
    result, sent = answered(flux, operation_id, failure, failure, httpx.Response(200, json=body))
    assert sent == 3
    read_as_the_spec_says(operation_id, body, result)
    assert len(sleeps) == 2
