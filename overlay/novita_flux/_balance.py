"""The account's balance: read as the spec's balance operation answers it, in exact USD, and the
pre-flight that refuses to start what the balance cannot pay for."""

from __future__ import annotations

import json
from decimal import Decimal, localcontext
from functools import cache
from typing import Any

import attrs
import httpx

from novita_flux._errors import BalanceValidationError, InsufficientBalanceError, NovitaError
from novita_flux._schema import SchemaViolation, compile_schema, conform
from novita_flux._spec import BALANCE, Schema, amount_fields, response_schema


@attrs.frozen
class Balance:
    """The account's balance in USD, exact: each amount is the API's whole number of units times
    the unit the spec gives it (1/10000 USD), so `Decimal("100.0000")` for "1000000".

    `available_balance` is what can still be spent. `pending_charges` is None when the answer
    does not have it (an older form of the API's answer). `units` holds the amounts as the API
    counts them, by the API's field names; `raw` the whole body as parsed, fields the spec does
    not name included."""

    available_balance: Decimal
    cash_balance: Decimal
    credit_limit: Decimal
    outstanding_invoices: Decimal
    pending_charges: Decimal | None
    units: dict[str, int] = attrs.field(repr=False)
    raw: dict[str, Any] = attrs.field(factory=dict, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """The balance as JSON: amounts in USD as decimal strings, and the units as sent."""
        amounts = {
            name: None if value is None else str(value)
            for name, value in attrs.asdict(self, recurse=False).items()
            if name not in ("units", "raw")
        }
        return {"currency": _currency(), **amounts, "units": dict(self.units)}


@cache
def _compiled() -> Schema:
    return compile_schema(response_schema(BALANCE, 200))


def _currency() -> str:
    return next(iter(amount_fields(BALANCE).values())).currency


def parse_balance(response: httpx.Response) -> Balance:
    """A 200 of the balance operation read as a Balance, or BalanceValidationError saying why."""
    try:
        payload = json.loads(response.content)
    except ValueError as error:
        raise BalanceValidationError(response, f"the body is not JSON ({error})") from None
    # Here, not at the top: the generated models cost `import novita_flux` a twentieth of
    # httpx's own import time, and a first generate() does not need them (issue 22).
    from novita_flux_api.models import BalanceDetail
    from novita_flux_api.types import Unset

    try:
        conformed = conform(_compiled(), payload)
        parsed = BalanceDetail.from_dict(conformed)
    except (SchemaViolation, KeyError, TypeError, ValueError) as error:
        problem = str(error) if isinstance(error, SchemaViolation) else repr(error)
        raise BalanceValidationError(response, problem, payload=payload) from None
    fields = amount_fields(BALANCE)

    def usd(name: str, value: int | str) -> Decimal:
        return _usd(int(value), fields[name].value)

    pending = parsed.pending_charges
    return Balance(
        available_balance=usd("availableBalance", parsed.available_balance),
        cash_balance=usd("cashBalance", parsed.cash_balance),
        credit_limit=usd("creditLimit", parsed.credit_limit),
        outstanding_invoices=usd("outstandingInvoices", parsed.outstanding_invoices),
        pending_charges=None if isinstance(pending, Unset) else usd("pendingCharges", pending),
        units={name: int(conformed[name]) for name in fields if name in conformed},
        raw=payload,
    )


def _usd(units: int, unit: Decimal) -> Decimal:
    with localcontext() as context:
        context.prec = 80  # exact: any whole number of units, however large
        return units * unit


def preflight(cost: Decimal, balance: Balance | NovitaError, what: str) -> str | None:
    """Refuse (InsufficientBalanceError) a `what` costing `cost` that the balance cannot pay for.

    A balance that could not be read (a key without billing rights, an API without the endpoint,
    any failure) does not stop anything: the check is left undone, and the notice saying so is
    returned, for the caller to say."""
    if isinstance(balance, NovitaError):
        return (
            f"the account's balance could not be read, so the {what} starts without checking "
            f"that it can pay for it: {type(balance).__name__}: {balance}"
        )
    if cost > balance.available_balance:
        raise InsufficientBalanceError(cost, balance.available_balance, what)
    return None
