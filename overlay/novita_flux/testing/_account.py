"""The account behind the reference server's key: what it may still spend, and what it reports.

A billed task lowers the balance by its exact price (the spec's formula, estimate_cost), kept as
an exact Decimal: the cheapest image costs about 0.03 of the unit the balance endpoint counts in
(1/10000 USD), so a balance kept in units would lose most of what it is told. A task the balance
cannot pay for in full is refused, BILLING_BALANCE_NOT_ENOUGH, and costs nothing.

The balance endpoint reports the exact balance rounded down to a whole unit (towards minus
infinity): it never reports more than the account can spend, and a drop it reports is the exact
drop to within one unit. An account with no balance given is unlimited: it never refuses, and
reports UNLIMITED_REPORTED less what it has spent, so that a drop still shows.
"""

from __future__ import annotations

import threading
from decimal import ROUND_FLOOR, Decimal, InvalidOperation, localcontext
from typing import Final

from novita_flux._spec import BALANCE, amount_fields, known_reasons

Amount = Decimal | float | int | str
# What an unlimited account says it holds before it spends anything, in USD.
UNLIMITED_REPORTED: Final = Decimal(1_000_000)


def as_balance(value: Amount | None) -> Decimal | None:
    """A balance in USD as an exact Decimal (floats by their shortest repr), or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Decimal | float | int | str):
        raise ValueError(f"balance must be an amount in USD or None, not {value!r}")
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"balance must be a non-negative amount in USD, not {value!r}")
    return amount


class Account:
    """The reference server's account (`app.state.account`, `ReferenceServer.account`).

    `balance` is what is left in USD, exact (None: unlimited), settable at any time; `spent` what
    billed tasks took; `reads` how many requests the balance endpoint got, whatever its answer.
    `deny_reads(reason)` answers every balance read with that reason's error (a key without
    billing rights: API_NOT_ALLOWED, 403; an API without the endpoint: API_NOT_FOUND, 404) until
    called with None.
    Safe to use from the test's thread while a ReferenceServer serves in another.
    """

    def __init__(self, balance: Amount | None = None) -> None:
        self._initial = as_balance(balance)
        self._lock = threading.Lock()
        self._balance = self._initial
        self.spent = Decimal(0)
        self.reads = 0
        self.denied: str | None = None

    @property
    def balance(self) -> Decimal | None:
        with self._lock:
            return self._balance

    @balance.setter
    def balance(self, value: Amount | None) -> None:
        checked = as_balance(value)
        with self._lock:
            self._balance = checked

    def deny_reads(self, reason: str | None) -> None:
        """Answer every balance read with `reason` (a reason the spec knows), or again with the
        balance (None)."""
        if reason is not None and reason not in known_reasons():
            raise ValueError(f"{reason!r} is not a reason the spec knows")
        self.denied = reason

    def reset(self, balance: Amount | None = None) -> None:
        """Back to `balance` (None: the balance the account was created with), nothing spent."""
        checked = self._initial if balance is None else as_balance(balance)
        with self._lock:
            self._balance = checked
            self.spent = Decimal(0)
            self.reads = 0
            self.denied = None

    # --- The server's side: called by the app as requests arrive; a test reads the counters --

    def charge(self, price: Decimal) -> bool:
        """Take `price` if the balance covers it; False (and nothing taken) if it does not."""
        with self._lock:
            if self._balance is not None:
                if price > self._balance:
                    return False
                self._balance -= price
            self.spent += price
            return True

    def count_read(self) -> None:
        with self._lock:
            self.reads += 1

    def refund(self, price: Decimal) -> None:
        """Give back a charge for a task that did not run after all (it met the rate limit)."""
        with self._lock:
            if self._balance is not None:
                self._balance += price
            self.spent -= price

    def report(self) -> dict[str, str]:
        """The balance endpoint's 200 body, every amount in the unit the spec gives it, as the
        strings of digits Novita's page shows."""
        with self._lock:
            left = UNLIMITED_REPORTED - self.spent if self._balance is None else self._balance
        units = amount_fields(BALANCE)
        amounts = {
            "availableBalance": left,
            "cashBalance": left,
            "creditLimit": Decimal(0),
            "pendingCharges": Decimal(0),
            "outstandingInvoices": Decimal(0),
        }
        return {name: _in_units(amount, units[name].value) for name, amount in amounts.items()}


def _in_units(amount: Decimal, unit: Decimal) -> str:
    """`amount` as a whole number of `unit`s, rounded down: never more than there is."""
    with localcontext() as context:
        context.prec = 80  # exact: an amount kept to the last digit of every price
        whole = (amount / unit).to_integral_value(rounding=ROUND_FLOOR)
    return str(int(whole))
