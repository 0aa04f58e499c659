from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_response import ErrorResponse
from ...models.flux_1_schnell_request import Flux1SchnellRequest
from ...models.flux_1_schnell_response import Flux1SchnellResponse
from ...types import Response


def _get_kwargs(
    *,
    body: Flux1SchnellRequest,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/v3beta/flux-1-schnell",
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorResponse | Flux1SchnellResponse | None:
    if response.status_code == 200:
        response_200 = Flux1SchnellResponse.from_dict(response.json())

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
) -> Response[ErrorResponse | Flux1SchnellResponse]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    body: Flux1SchnellRequest,
) -> Response[ErrorResponse | Flux1SchnellResponse]:
    """Generate images from a text prompt with FLUX.1 [schnell]

     Generates `image_num` images synchronously and returns pre-signed links to them. Each
    link is valid for `image_url_ttl` seconds (0: no expiry stated). The default rate limit
    is 10 images per minute per key. The call is billed once the task runs, so a 200 is
    paid for even when its body cannot be read, and so may be a 500 TASK_FAILED.

    Args:
        body (Flux1SchnellRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorResponse | Flux1SchnellResponse]
    """

    kwargs = _get_kwargs(
        body=body,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient,
    body: Flux1SchnellRequest,
) -> ErrorResponse | Flux1SchnellResponse | None:
    """Generate images from a text prompt with FLUX.1 [schnell]

     Generates `image_num` images synchronously and returns pre-signed links to them. Each
    link is valid for `image_url_ttl` seconds (0: no expiry stated). The default rate limit
    is 10 images per minute per key. The call is billed once the task runs, so a 200 is
    paid for even when its body cannot be read, and so may be a 500 TASK_FAILED.

    Args:
        body (Flux1SchnellRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorResponse | Flux1SchnellResponse
    """

    return sync_detailed(
        client=client,
        body=body,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    body: Flux1SchnellRequest,
) -> Response[ErrorResponse | Flux1SchnellResponse]:
    """Generate images from a text prompt with FLUX.1 [schnell]

     Generates `image_num` images synchronously and returns pre-signed links to them. Each
    link is valid for `image_url_ttl` seconds (0: no expiry stated). The default rate limit
    is 10 images per minute per key. The call is billed once the task runs, so a 200 is
    paid for even when its body cannot be read, and so may be a 500 TASK_FAILED.

    Args:
        body (Flux1SchnellRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorResponse | Flux1SchnellResponse]
    """

    kwargs = _get_kwargs(
        body=body,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    body: Flux1SchnellRequest,
) -> ErrorResponse | Flux1SchnellResponse | None:
    """Generate images from a text prompt with FLUX.1 [schnell]

     Generates `image_num` images synchronously and returns pre-signed links to them. Each
    link is valid for `image_url_ttl` seconds (0: no expiry stated). The default rate limit
    is 10 images per minute per key. The call is billed once the task runs, so a 200 is
    paid for even when its body cannot be read, and so may be a 500 TASK_FAILED.

    Args:
        body (Flux1SchnellRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorResponse | Flux1SchnellResponse
    """

    return (
        await asyncio_detailed(
            client=client,
            body=body,
        )
    ).parsed
