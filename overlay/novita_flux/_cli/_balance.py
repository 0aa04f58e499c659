"""`novita-flux balance`, and the balance check `batch` and `generate --check-balance` make before
they send anything."""

from __future__ import annotations

import argparse
from decimal import Decimal
from typing import Any

from novita_flux._balance import Balance, preflight
from novita_flux._cli._common import EXIT_OK, BadInput, Console, client_options, open_client
from novita_flux._cli._options import add_api_options, add_output_options
from novita_flux._client import FluxSchnell
from novita_flux._errors import InsufficientBalanceError, NovitaError
from novita_flux._format import usd


def add_parser(commands: Any) -> None:
    balance = commands.add_parser(
        "balance",
        help="print the account's balance",
        description="What the account behind the key can still spend, in USD (the API counts "
        "in units of 1/10000 USD; --json also gives the units as sent). Reading it is free.",
    )
    add_api_options(balance)
    add_output_options(balance)
    balance.set_defaults(run=cmd_balance)


def cmd_balance(args: argparse.Namespace, console: Console) -> int:
    with open_client(args.mock, **client_options(args)) as flux:
        balance = flux.balance()
    console.result(balance.as_dict(), balance_line(balance))
    return EXIT_OK


def balance_line(balance: Balance) -> str:
    amounts = [
        f"cash ${usd(balance.cash_balance)}",
        f"credit limit ${usd(balance.credit_limit)}",
        f"outstanding invoices ${usd(balance.outstanding_invoices)}",
    ]
    if balance.pending_charges is not None:
        amounts.append(f"pending charges ${usd(balance.pending_charges)}")
    return f"available ${usd(balance.available_balance)} ({', '.join(amounts)})"


def check_balance(
    flux: FluxSchnell, cost: Decimal, console: Console, what: str, hint: str = ""
) -> None:
    """Refuse (exit status 2, one line, nothing sent) what costs more than the account has
    available; a balance that cannot be read is one line of notice, and the run goes on."""
    try:
        balance: Balance | NovitaError = flux.balance()
    except NovitaError as error:
        balance = error
    try:
        notice = preflight(cost, balance, what)
    except InsufficientBalanceError as error:
        raise BadInput(f"{error}{hint}") from None
    if notice is not None:
        console.info(notice)
    elif isinstance(balance, Balance):
        console.info(
            f"balance: ${usd(balance.available_balance)} available, enough for the "
            f"${usd(cost)} this {what} costs"
        )
