"""The account's balance (the spec's balance operation): the same key as a generation, and the
account's figures as Novita's page shows them (see _account for how they are rounded)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from novita_flux.testing._api import authenticate
from novita_flux.testing._envelope import json_response
from novita_flux.testing._settings import Endpoint, Settings


def balance_endpoint(settings: Settings) -> Endpoint:
    account = settings.account

    async def balance(request: Request) -> Response:
        account.count_read()
        denied = authenticate(request.headers.get("authorization"), settings)
        if denied is not None:
            return denied
        if account.denied is not None:
            return settings.error(account.denied, account.denied.lower().replace("_", " "))
        return json_response(account.report())

    return balance
