"""Every error novita_flux raises, all under NovitaError.

Nothing a server or a user sends surfaces as a bare KeyError, TypeError or JSONDecodeError: each
failure below keeps what the server said (status, reason, message, task id) and never the API key.
Every error says whether the call behind it may have been billed (`possibly_billed`), so that
nothing paid for is sent again without the caller asking.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from novita_flux._format import shortened, usd
from novita_flux._models import GeneratedImage, Generation, link_of
from novita_flux._spec import known_reasons

_BODY_LIMIT = 2000  # characters of a raw body kept on an error
_NOT_JSON: Any = object()


class NovitaError(Exception):
    """Base of every error raised by novita_flux."""

    #: True when the call may have run and been billed (a 200 that could not be read, a timeout
    #: after the request left, a 5xx after the task may have run): not sent again unasked.
    possibly_billed: bool = False

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception pickles as cls(*self.args), which the errors with an __init__ of their own
        # cannot take: rebuilt from the message and the attributes instead (a response kept on
        # an error holds no key: see _without_key).
        return (_rebuilt, (type(self), self.args), self.__dict__)


def _rebuilt(cls: type[NovitaError], args: tuple[Any, ...]) -> NovitaError:
    error = cls.__new__(cls)
    error.args = args
    return error


# --- Raised before anything is sent -----------------------------------------------------------


class ValidationError(NovitaError, ValueError):
    """An argument is outside what the API accepts; nothing was sent."""

    def __init__(self, field: str, value: Any, expected: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.value = value
        self.expected = expected


class BudgetExceededError(NovitaError):
    """The estimated cost is above the budget you set; nothing was sent."""

    def __init__(self, cost: Decimal, budget: Decimal, what: str = "request") -> None:
        super().__init__(
            f"estimated cost ${usd(cost)} of this {what} exceeds the budget ${usd(budget)}"
        )
        self.cost = cost
        self.budget = budget


class InsufficientBalanceError(BudgetExceededError):
    """The account's available balance is below the estimated cost; nothing was sent. `budget`
    (and `available`) is the balance, in USD."""

    def __init__(self, cost: Decimal, budget: Decimal, what: str = "request") -> None:
        NovitaError.__init__(
            self,
            f"estimated cost ${usd(cost)} of this {what} exceeds the account's available "
            f"balance ${usd(budget)}; nothing was sent",
        )
        self.cost = cost
        self.budget = budget

    @property
    def available(self) -> Decimal:
        return self.budget


class MissingAPIKeyError(NovitaError):
    """No API key was given and NOVITA_API_KEY is not set."""


# --- The API answered with an error status ----------------------------------------------------


class APIStatusError(NovitaError):
    """The API answered with a non-2xx status; carries its error envelope."""

    def __init__(
        self,
        response: httpx.Response,
        body: object,
        retry_after: float | None,
        *,
        billable: bool = True,
    ) -> None:
        envelope = body if isinstance(body, dict) else {}
        self.response = _without_key(response)
        self.status_code = response.status_code
        self.body = (
            body if body is not None else shortened(response.text, _BODY_LIMIT, counted=True)
        )
        self.code = _typed(envelope, "code", int)
        self.reason = _typed(envelope, "reason", str)
        self.message = _typed(envelope, "message", str)
        self.metadata: dict[str, Any] = _typed(envelope, "metadata", dict) or {}
        task_id = _typed(self.metadata, "task_id", str)
        if task_id is None:  # not `or`: an empty id is still what the server said
            task_id = _typed(_typed(envelope, "task", dict) or {}, "task_id", str)
        self.task_id: str | None = task_id
        self.retry_after = retry_after
        known = known_reasons().get(self.reason) if self.reason is not None else None
        # A reason the spec knows says; otherwise a 5xx may follow a task that ran. An operation
        # that is never billed (`billable=False`: reading the balance) cannot have been.
        self.possibly_billed = billable and (
            not known.never_billed if known is not None else self.status_code >= 500
        )
        text = f"{self.status_code} {self.reason or response.reason_phrase}"
        if self.message and self.message.strip():
            text += f": {self.message.strip()}"
        elif body is None and response.text:
            text += f": {shortened(response.text, 200, counted=True)}"
        if self.task_id is not None:
            text += f" (task_id={self.task_id})"
        if self.possibly_billed:
            text += (
                "; the call may have been billed, so it is not retried unless "
                "retry_server_errors=True"
            )
        super().__init__(text)


class BadRequestError(APIStatusError):
    """400: the request was rejected (invalid body, size, prompt, or balance)."""


class AuthenticationError(APIStatusError):
    """The key is missing, unknown or invalid (401, or an auth reason on 400/403)."""


class PermissionDeniedError(APIStatusError):
    """403: the key may not use this API."""


class NotFoundError(APIStatusError):
    """404: the API path does not exist."""


class RateLimitError(APIStatusError):
    """429: the key's rate limit was reached."""


class InternalServerError(APIStatusError):
    """5xx: the API failed. Retried only when its reason says nothing was billed
    (SERVICE_NOT_AVAILABLE, CREATE_TASK_FAILED) or with retry_server_errors=True."""


# --- The API answered 2xx, but not what the contract promises ----------------------------------


class ResponseValidationError(NovitaError):
    """A 2xx body that does not match the spec (bad JSON, missing fields, unknown image type).

    The call was likely billed, so everything readable is kept: `body` (the whole parsed JSON,
    or the text when it is not JSON), `task_id`, `images` (every link that could be read) and
    `generation` (those images as a Generation, to download or save)."""

    possibly_billed = True

    def __init__(
        self,
        response: httpx.Response,
        problem: str,
        *,
        payload: Any = _NOT_JSON,
        task_id: str | None = None,
        images: Sequence[GeneratedImage] = (),
        request: dict[str, Any] | None = None,
        cost: Decimal | None = None,
    ) -> None:
        self.response = _without_key(response)
        self.status_code = response.status_code
        self.problem = problem
        self.body: Any = (
            shortened(response.text, _BODY_LIMIT, counted=True) if payload is _NOT_JSON else payload
        )
        self.task_id = task_id
        self.images: list[GeneratedImage] = list(images)
        self.request = request
        self.cost = cost
        kept = f"task {task_id}" if task_id is not None else "no task id could be read"
        super().__init__(
            f"the API's {response.status_code} response breaks the contract: {problem}; the "
            f"call was likely billed ({kept}; {len(self.images)} image link(s) kept on this "
            "error)"
        )

    @property
    def generation(self) -> Generation | None:
        """What could be read, as a Generation to save; None when no link could be read.
        Its task_id is "" when none could be read (see `task_id`, which is then None)."""
        if not self.images or self.request is None:
            return None
        raw = self.body if isinstance(self.body, dict) else {}
        return Generation(
            self.task_id or "",
            self.images,
            self.request["seed"],
            self.request,
            self.cost if self.cost is not None else Decimal(0),
            raw,
        )


class BalanceValidationError(ResponseValidationError):
    """A 2xx answer to the balance request that does not match the spec. Reading the balance is
    not billed: nothing was paid for."""

    possibly_billed = False

    def __init__(self, response: httpx.Response, problem: str, *, payload: Any = _NOT_JSON) -> None:
        super().__init__(response, problem, payload=payload)
        Exception.__init__(
            self,
            f"the API's {response.status_code} answer to the balance request breaks the "
            f"contract: {problem}",
        )


# --- No answer --------------------------------------------------------------------------------


class APIConnectionError(NovitaError):
    """The API could not be reached, or the connection broke before an answer."""


class APITimeoutError(APIConnectionError):
    """The API did not answer within the timeout."""


# Whether a connection error may follow a billed call is known only where it happened: set on
# the instance by the client (a connect failure cannot have been billed; a read timeout may).


# --- Images -----------------------------------------------------------------------------------


class ImageDownloadError(NovitaError):
    """An image could not be downloaded, or what came back is not the image promised."""


class ImageExpiredError(ImageDownloadError):
    """The image's pre-signed URL is past its expiry; generate again."""


class SaveIncompleteError(ImageDownloadError):
    """Some images of a generation could not be saved; the others were.

    `saved` lists the files written, `failures` each image not saved with its error; the images'
    links (`image.url`, valid until `image.expires_at`) can still be fetched while they last."""

    def __init__(
        self,
        generation: Generation,
        saved: Sequence[Path],
        failures: Sequence[tuple[GeneratedImage, NovitaError]],
    ) -> None:
        self.generation = generation
        self.saved = list(saved)
        self.failures = list(failures)
        total = len(self.saved) + len(self.failures)
        missing = "; ".join(
            f"image {image.index} ({error}) {link_of(image)}" for image, error in self.failures
        )
        super().__init__(
            f"saved {len(self.saved)} of {total} image(s) of task {generation.task_id}; "
            f"not saved: {missing}"
        )

    @property
    def expired(self) -> bool:
        """Whether every failure was an expired link (generating again is the only way)."""
        return all(isinstance(error, ImageExpiredError) for _, error in self.failures)


_BY_KIND: dict[str, type[APIStatusError]] = {
    "bad_request": BadRequestError,
    "authentication": AuthenticationError,
    "permission": PermissionDeniedError,
    "not_found": NotFoundError,
    "rate_limit": RateLimitError,
    "server": InternalServerError,
}
_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
}


def error_class(reason: str) -> type[APIStatusError]:
    """The exception the spec's known `reason` maps to (KeyError for a reason it does not know)."""
    return _BY_KIND[known_reasons()[reason].kind]


def status_error(
    response: httpx.Response, retry_after: float | None = None, *, billable: bool = True
) -> APIStatusError:
    """The exception for an error response: by the spec's known reason first, status second.
    `billable=False` for an operation that is never billed."""
    try:
        body: object = json.loads(response.content)
    except ValueError:
        body = None
    reason = body.get("reason") if isinstance(body, dict) else None
    known = known_reasons().get(reason) if isinstance(reason, str) else None
    if known is not None:
        cls = _BY_KIND[known.kind]
    elif response.status_code >= 500:
        cls = InternalServerError
    else:
        cls = _BY_STATUS.get(response.status_code, APIStatusError)
    return cls(response, body, retry_after, billable=billable)


# Request headers that carry a credential: an error keeps the response it describes, and the
# response keeps its request, which the key was added to.
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
REDACTED = "[redacted]"


def _without_key(response: httpx.Response) -> httpx.Response:
    """`response`, its request swapped for a copy whose credentials are replaced by [redacted]
    (the request itself is left as it is: a retry sends it again)."""
    try:
        request = response.request
    except RuntimeError:  # a response built by hand, with no request
        return response
    if not any(name.lower() in _SECRET_HEADERS for name in request.headers):
        return response
    headers = [
        (name, REDACTED if name.lower() in _SECRET_HEADERS else value)
        for name, value in request.headers.multi_items()
    ]
    try:
        content: bytes | None = request.content
    except httpx.RequestNotRead:
        content = None
    response.request = httpx.Request(request.method, request.url, headers=headers, content=content)
    return response


def _typed(mapping: dict[str, Any], key: str, kind: type[Any]) -> Any:
    value = mapping.get(key)
    return value if isinstance(value, kind) and not isinstance(value, bool) else None
