"""Every operation of the spec is covered from the spec itself, none by hand: served by the
reference server, fuzzed by the strategies (tests/spec/test_operations_properties.py), and
checked by `verify`. Each test lists the spec's operations; an operation added to the spec fails
here until each of the three covers it (the last test adds one, and sees which do)."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest
from hypothesis import given, settings

from novita_flux import _spec
from novita_flux._schema import compile_schema, conform
from novita_flux.testing import create_app
from novita_flux.verify import build_plan
from tests.spec import test_operations_properties
from tests.strategies import RESPONSE_SCHEMAS, conforming_bodies

OPERATIONS = list(_spec.operations())
KEY = "test-key"


def test_the_spec_has_the_generation_and_the_balance() -> None:
    assert {_spec.GENERATE, _spec.BALANCE} <= set(OPERATIONS)
    assert len(OPERATIONS) == len({(op.method, op.path) for op in _spec.operations().values()})


async def call(operation: _spec.Operation) -> httpx.Response:
    """The operation called on the reference server with the key, as the spec documents it."""
    transport = httpx.ASGITransport(app=create_app(api_key=KEY))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        body = None
        if "requestBody" in operation.body:
            content = operation.body["requestBody"]["content"]["application/json"]
            body = content["example"] | {"width": 64, "height": 64}  # cheap
        return await http.request(
            operation.method,
            operation.path,
            json=body,
            headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
        )


@pytest.mark.parametrize("operation_id", OPERATIONS)
@pytest.mark.anyio
async def test_every_operation_is_served_by_the_reference_server(operation_id: str) -> None:
    response = await call(_spec.operation(operation_id))
    assert response.status_code == 200, response.text
    conform(compile_schema(_spec.response_schema(operation_id, 200)), response.json())


@pytest.mark.parametrize("operation_id", OPERATIONS)
def test_every_operation_is_fuzzed_by_the_strategies(operation_id: str) -> None:
    assert operation_id in RESPONSE_SCHEMAS
    assert operation_id in test_operations_properties.CALLS

    @settings(max_examples=5, database=None)
    @given(body=conforming_bodies(operation_id))
    def drawn_from_the_spec(body: Any) -> None:
        conform(compile_schema(_spec.response_schema(operation_id, 200)), body)

    drawn_from_the_spec()


@pytest.mark.parametrize("operation_id", OPERATIONS)
def test_every_operation_is_checked_by_verify(operation_id: str) -> None:
    sent = {send.operation for probe in build_plan().probes for send in probe.sends}
    assert operation_id in sent


def with_another_operation(document: dict[str, Any]) -> dict[str, Any]:
    """The spec with one more operation nobody has written code for."""
    spec = copy.deepcopy(document)
    balance = spec["paths"]["/openapi/v1/billing/balance/detail"]["get"]
    spec["paths"]["/openapi/v1/user"] = {"get": balance | {"operationId": "userInfo"}}
    return spec


def test_an_operation_nobody_has_covered_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = with_another_operation(_spec.document())
    monkeypatch.setattr(_spec, "document", lambda: spec)
    for cached in (_spec.operations, _spec.operation):
        monkeypatch.setattr(_spec, cached.__name__, cached.__wrapped__)  # type: ignore[attr-defined]
    assert "userInfo" in _spec.operations()
    # Not served: the reference server refuses to start without a handler for it.
    import novita_flux.testing._app as app

    monkeypatch.setattr(app, "operations", _spec.operations)
    with pytest.raises(RuntimeError, match="userInfo"):
        create_app()
    # Not fuzzed: the client has no call for it.
    assert "userInfo" not in test_operations_properties.CALLS
    # Checked by verify all the same: an operation that takes no body is read with the key.
    import novita_flux.verify._plan as plan

    monkeypatch.setattr(plan, "operations", _spec.operations)
    sent = {send.operation for probe in build_plan().probes for send in probe.sends}
    assert "userInfo" in sent
