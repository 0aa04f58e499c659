from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.balance_detail import BalanceDetail
from ...models.error_response import ErrorResponse
from ...types import Response


def _get_kwargs() -> dict[str, Any]:

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/openapi/v1/billing/balance/detail",
    }

    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> BalanceDetail | ErrorResponse | None:
    if response.status_code == 200:
        response_200 = BalanceDetail.from_dict(response.json())

        return response_200

    if response.status_code == 400:
        response_400 = ErrorResponse.from_dict(response.json())

        return response_400

    if response.status_code == 401:
        response_401 = ErrorResponse.from_dict(response.json())

        return response_401

    if response.status_code == 403:
        response_403 = ErrorResponse.from_dict(response.json())

        return response_403

    if response.status_code == 404:
        response_404 = ErrorResponse.from_dict(response.json())

        return response_404

    if response.status_code == 429:
        response_429 = ErrorResponse.from_dict(response.json())

        return response_429

    if response.status_code == 500:
        response_500 = ErrorResponse.from_dict(response.json())

        return response_500

    if response.status_code == 503:
        response_503 = ErrorResponse.from_dict(response.json())

        return response_503

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[BalanceDetail | ErrorResponse]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
) -> Response[BalanceDetail | ErrorResponse]:
    """The account's balance, in units of 1/10000 USD

     What the account behind the key can still spend, from Novita's "User Balance Info" page
    (`GET /openapi/v1/billing/balance/detail`, the same host and bearer key as the
    generation). Novita's page also lists `Content-Type: application/json` as required
    although the request has no body; the client sends it. Reading the balance is not
    billed (`x-billed: never`), so any failure may be sent again. Which answer a key without
    billing rights gets (401, 403 or 404), and whether `availableBalance` drops at once by
    a generation's exact price, only a live call tells: `novita-flux verify` asks.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[BalanceDetail | ErrorResponse]
    """

    kwargs = _get_kwargs()

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient,
) -> BalanceDetail | ErrorResponse | None:
    """The account's balance, in units of 1/10000 USD

     What the account behind the key can still spend, from Novita's "User Balance Info" page
    (`GET /openapi/v1/billing/balance/detail`, the same host and bearer key as the
    generation). Novita's page also lists `Content-Type: application/json` as required
    although the request has no body; the client sends it. Reading the balance is not
    billed (`x-billed: never`), so any failure may be sent again. Which answer a key without
    billing rights gets (401, 403 or 404), and whether `availableBalance` drops at once by
    a generation's exact price, only a live call tells: `novita-flux verify` asks.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        BalanceDetail | ErrorResponse
    """

    return sync_detailed(
        client=client,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
) -> Response[BalanceDetail | ErrorResponse]:
    """The account's balance, in units of 1/10000 USD

     What the account behind the key can still spend, from Novita's "User Balance Info" page
    (`GET /openapi/v1/billing/balance/detail`, the same host and bearer key as the
    generation). Novita's page also lists `Content-Type: application/json` as required
    although the request has no body; the client sends it. Reading the balance is not
    billed (`x-billed: never`), so any failure may be sent again. Which answer a key without
    billing rights gets (401, 403 or 404), and whether `availableBalance` drops at once by
    a generation's exact price, only a live call tells: `novita-flux verify` asks.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[BalanceDetail | ErrorResponse]
    """

    kwargs = _get_kwargs()

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
) -> BalanceDetail | ErrorResponse | None:
    """The account's balance, in units of 1/10000 USD

     What the account behind the key can still spend, from Novita's "User Balance Info" page
    (`GET /openapi/v1/billing/balance/detail`, the same host and bearer key as the
    generation). Novita's page also lists `Content-Type: application/json` as required
    although the request has no body; the client sends it. Reading the balance is not
    billed (`x-billed: never`), so any failure may be sent again. Which answer a key without
    billing rights gets (401, 403 or 404), and whether `availableBalance` drops at once by
    a generation's exact price, only a live call tells: `novita-flux verify` asks.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        BalanceDetail | ErrorResponse
    """

    return (
        await asyncio_detailed(
            client=client,
        )
    ).parsed
