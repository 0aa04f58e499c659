"""What both clients share and no I/O: configuration, request building, response parsing, and
the flows (the retry loop, a download, a save) written once as generators that yield what to do
next; FluxSchnell and AsyncFluxSchnell only carry the steps out."""

from __future__ import annotations

import copy
import functools
import json
import logging
import math
import os
import time
from collections.abc import Callable, Generator, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any, Generic, Self, TypeVar

import attrs
import httpx

from novita_flux import _deadline, _retry
from novita_flux._arguments import (
    check_callback,
    check_directory,
    check_generation,
    check_image,
    check_max_bytes,
    check_metadata,
    check_operation,
    check_requests,
    check_url,
)
from novita_flux._balance import Balance, parse_balance
from novita_flux._batch import ImagePacer, PlannedRequest, check_concurrency, plan_batch
from novita_flux._config import (
    DEFAULT_PORTS,
    NOT_GIVEN,
    POOL_LIMITS,
    USER_AGENT,
    Timeout,
    check_api_key,
    check_base_url,
    check_flag,
    check_max_retries,
    check_timeout,
    origin,
    resolve_timeout,
    ssl_context,
    unreachable,
)
from novita_flux._constants import (
    API_KEY_ENV,
    BASE_URL_ENV,
    IMAGE_HEADERS,
    KEY_HELP_URL,
    LANE_CONNECTIONS,
    LOGGER_NAME,
)
from novita_flux._errors import (
    APIConnectionError,
    APITimeoutError,
    ImageDownloadError,
    MissingAPIKeyError,
    NovitaError,
    ResponseValidationError,
    SaveIncompleteError,
    ValidationError,
    status_error,
)
from novita_flux._faultpoints import reach
from novita_flux._images import (
    ImageReceiver,
    check_not_expired,
    file_name,
    next_hop,
    publish,
    sidecar,
    staged_file,
    storage_error,
    write_json_atomically,
)
from novita_flux._models import GeneratedImage, Generation, link_expiry
from novita_flux._request import prepare_request
from novita_flux._salvage import salvage
from novita_flux._schema import SchemaViolation, compile_schema, conform, show
from novita_flux._spec import (
    BALANCE,
    GENERATE,
    Operation,
    Schema,
    canonical_image_type,
    default_base_url,
    operation,
    response_schema,
)

logger = logging.getLogger(LOGGER_NAME)

Budget = Decimal | float | int | str
HttpT = TypeVar("HttpT", httpx.Client, httpx.AsyncClient)

# The headers the client sets, each name written once (httpx compares names without case).
_AUTHORIZATION = "Authorization"
_DEFAULT_HEADERS: Mapping[str, str] = MappingProxyType({"User-Agent": USER_AGENT})
_JSON_BODY: Mapping[str, str] = MappingProxyType({"Content-Type": "application/json"})
# What the flows' requests, which carry the key already, are sent with: httpx's own do-nothing
# Auth, so that neither an injected client's auth nor credentials in a URL replace the key.
NO_AUTH = httpx.Auth()
# httpx's own json= encoding (0.28), made once: the same bytes on the wire.
_ENCODE_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


# --- What the flows ask their driver to do -----------------------------------------------------


@attrs.frozen
class _Send:
    """Send this API request and hand back the response (or throw the transport error), all of
    it within `seconds` (None: no limit).

    Should the call be stopped from outside while this step is under way, a driver says what
    was paid for on the exception that stops it: `what` names the request for a person, and
    `read` reads a 2xx answer exactly as the flow would. A request that is never billed
    (`billable=False`: reading the balance) is an ordinary exchange: nothing to wait for when the
    call is stopped, nothing to say."""

    request: httpx.Request
    seconds: float | None
    what: str = ""
    # Not part of the step's identity: it is bound to the moment of each attempt.
    read: Callable[[httpx.Response], Generation] | None = attrs.field(default=None, eq=False)
    billable: bool = True


@attrs.frozen
class _Fetch:
    """Stream this image into the receiver and hand back the response, within `seconds`."""

    request: httpx.Request
    receiver: ImageReceiver
    seconds: float | None


@attrs.frozen
class _Sleep:
    seconds: float


_Step = _Send | _Fetch | _Sleep
ResultT = TypeVar("ResultT")
# A flow: the steps of one call, each answered by a driver; it returns the call's result.
_Flow = Generator[_Step, httpx.Response | None, ResultT]


class _APIKeyAuth(httpx.Auth):
    """Adds the bearer key to requests for the API's own origin and to nothing else."""

    def __init__(self, key: str, origin: tuple[str, str, int | None]) -> None:
        self._header = f"Bearer {key}"
        self._origin = origin

    def header_for(self, url: httpx.URL) -> str | None:
        """The Authorization header for a request to `url`: None unless it is the API's origin
        (the base URL the client was made with, whatever `base_url` has been set to since)."""
        if (url.scheme, url.host, url.port or DEFAULT_PORTS.get(url.scheme)) == self._origin:
            return self._header
        return None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        header = self.header_for(request.url)
        if header is not None:
            request.headers[_AUTHORIZATION] = header
        yield request

    def __repr__(self) -> str:
        return "<APIKeyAuth key=****>"


@cache
def _compiled_response_schema() -> Schema:
    return compile_schema(response_schema(GENERATE, 200))


def parse_generation(
    response: httpx.Response, body: dict[str, Any], cost: Decimal, sent: datetime
) -> Generation:
    """A 200's body read as a Generation, or ResponseValidationError keeping what it could read.

    A function of its own (not a method) so that `verify` judges answers exactly as the client
    reads them."""
    try:
        payload = json.loads(response.content)
    except ValueError as error:
        raise ResponseValidationError(
            response, f"the body is not JSON ({error})", request=body, cost=cost
        ) from None
    try:
        # The conformed copy, not the raw JSON: a TTL sent as 3600.0 arrives as the int 3600.
        # Read as it stands: it conforms, so the generated model's from_dict would only copy
        # it into objects read once and dropped (a third of the client's own work per call,
        # issue 22); test_response_properties holds the two readings equal.
        answer = conform(_compiled_response_schema(), payload)
        task_id: str = answer["task"]["task_id"]
        images = [_image(image, index, sent) for index, image in enumerate(answer["images"])]
    except (SchemaViolation, KeyError, TypeError, ValueError) as error:
        # ValueError and the rest: belt and braces (int() refuses a TTL of 5,000 digits).
        problem = str(error) if isinstance(error, SchemaViolation) else repr(error)
        salvaged, readable = salvage(payload, sent, body["response_image_type"])
        raise ResponseValidationError(
            response,
            problem,
            payload=payload,
            task_id=salvaged,
            images=readable,
            request=body,
            cost=cost,
        ) from None
    paid_for = body.get("image_num")  # always sent by the client; `verify` may omit it
    if len(images) != paid_for and type(paid_for) is int:
        # Within the spec's bounds, but not the images paid for: kept, and said aloud.
        logger.warning(
            "the API's answer (task %s) holds %d image(s) for the %d paid for: a contract "
            "deviation; every image it holds is kept",
            task_id,
            len(images),
            paid_for,
        )
    return Generation(
        task_id=task_id,
        images=images,
        seed=body["seed"],
        request=body,
        cost=cost,
        raw=payload,
    )


class _BaseClient(Generic[HttpT]):
    """Configuration, request building, response parsing and the two flows; no I/O."""

    _http: HttpT

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None,
        timeout: Timeout,
        max_retries: int,
        retry_server_errors: bool,
        allow_insecure: bool,
        http_client: HttpT | None,
        http_client_type: type[HttpT],
    ) -> None:
        key = check_api_key(api_key if api_key is not None else os.environ.get(API_KEY_ENV, ""))
        if not key:
            raise MissingAPIKeyError(
                f"no API key: pass api_key=... or set the {API_KEY_ENV} environment variable "
                f"(create a key at {KEY_HELP_URL})"
            )
        self.base_url: str = check_base_url(
            base_url or os.environ.get(BASE_URL_ENV) or default_base_url(),
            check_flag("allow_insecure", allow_insecure),
        )
        if http_client is not None and not isinstance(http_client, http_client_type):
            raise ValidationError(
                "http_client",
                http_client,
                f"an {http_client_type.__module__}.{http_client_type.__name__}",
                f"http_client: {show(http_client)} is not an httpx.{http_client_type.__name__}",
            )
        self.timeout: httpx.Timeout = check_timeout(resolve_timeout(timeout, http_client))
        self.max_retries: int = check_max_retries(max_retries)
        self.retry_server_errors: bool = check_flag("retry_server_errors", retry_server_errors)
        self._auth: _APIKeyAuth = _APIKeyAuth(key, origin(self.base_url))
        self._owns_http: bool = http_client is None
        self._injected: bool = http_client is not None
        self._http_client_type: type[HttpT] = http_client_type
        # No auth on the httpx client itself: the key is added per request, for the API's
        # origin only, so image downloads can never carry it.
        self._http = http_client if http_client is not None else self._new_http()
        # Our own pools carry the User-Agent as a default; an injected client gets it per request.
        self._headers = _DEFAULT_HEADERS if self._injected else None
        self._limits: tuple[httpx.Timeout, dict[str, float | None], float | None] | None = None
        self._routes: dict[str, tuple[str, httpx.URL, httpx.Headers, httpx.Headers]] = {}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, "
            f"timeout={self.timeout!r}, max_retries={self.max_retries}, "
            f"retry_server_errors={self.retry_server_errors})"
        )

    def _new_http(self) -> HttpT:
        return self._http_client_type(
            limits=POOL_LIMITS, verify=ssl_context(), headers=_DEFAULT_HEADERS
        )

    def lanes(self, concurrency: int) -> list[Self]:
        """Clients to spread a batch of `concurrency` requests at once over: this one first, then
        as many more as needed, each with its own connection pool (closing this client does not
        close them: close each lane this returns but the first).

        httpcore 1.0's pool does work in proportion to connections x queued requests on every
        request (encode/httpcore#1035), so one pool of 64 connections spends more time on
        bookkeeping than on HTTP; pools of LANE_CONNECTIONS keep that cost flat. An injected
        http_client is the caller's choice and is used as it is.
        """
        lanes = [self]
        if not self._injected:
            for _ in range(math.ceil(check_concurrency(concurrency) / LANE_CONNECTIONS) - 1):
                lane = copy.copy(self)
                lane._http = self._new_http()
                lane._owns_http = True
                lanes.append(lane)
        return lanes

    def with_options(
        self,
        *,
        timeout: Timeout = NOT_GIVEN,
        max_retries: int | None = None,
        retry_server_errors: bool | None = None,
    ) -> Self:
        """A client sharing this one's connections, with other defaults."""
        clone = copy.copy(self)
        clone._owns_http = False
        if timeout is not NOT_GIVEN:
            clone.timeout = check_timeout(timeout)
        if max_retries is not None:
            clone.max_retries = check_max_retries(max_retries)
        if retry_server_errors is not None:
            clone.retry_server_errors = check_flag("retry_server_errors", retry_server_errors)
        return clone

    # --- building and parsing ---

    def build_request(
        self, operation_id: str, body: Any = None, *, timeout: Timeout = NOT_GIVEN
    ) -> httpx.Request:
        """The request for the spec's operation `operation_id` (its method and path, this
        client's base URL, headers and timeout), with `body` as its JSON exactly as given.

        Nothing is checked against the spec, priced or sent: this is the first step of every
        call, exposed for sending what the client never would (`verify`'s probes go out this
        way, through `send`). An operation that takes no body still says Content-Type, as
        Novita's pages list it as required. ValidationError names an operation the spec does
        not have, a body for one that takes none, or a body that is not JSON.
        """
        check_operation(operation_id, body)
        timeouts, _ = self._exchange_limits(self._timeout_for(timeout))
        return self._request_for(operation(operation_id), body, timeouts)

    def _request_for(
        self,
        called: Operation,
        body: Any,
        timeouts: dict[str, float | None],
        *,
        keyed: bool = False,
    ) -> httpx.Request:
        """`keyed`: with the API key already in it (the flows' own requests, which go nowhere but
        the API's origin), sent with `NO_AUTH`; without, `send` adds it through `_auth`."""
        url, headers, keyed_headers = self._route(called)
        if keyed:
            headers = keyed_headers
        return self._http.build_request(
            called.method,
            url,
            # The bytes httpx's json= would send, from an encoder made once rather than per call.
            content=None if body is None else _ENCODE_JSON(body).encode(),
            headers=headers,
            # What timeout= would put there, without a Timeout built and read on every call.
            extensions={"timeout": dict(timeouts)},
        )

    def _route(self, called: Operation) -> tuple[httpx.URL, httpx.Headers, httpx.Headers]:
        """The operation's URL and this client's headers for it (without the key, and with it),
        worked out once per client: parsing the URL was a third of building each request, and
        an auth flow comparing origins a tenth of the client's own work (issue 22)."""
        known = self._routes.get(called.path)
        if known is None or known[0] is not self.base_url:
            headers = {**(self._headers or {}), **_JSON_BODY}
            url = httpx.URL(self.base_url + called.path)
            key = self._auth.header_for(url)  # a base_url changed since to another host: none
            keyed = headers if key is None else {**headers, _AUTHORIZATION: key}
            # As httpx.Headers, which httpx copies as they are instead of encoding each name and
            # value again; never changed once made (httpx merges into a copy).
            known = (self.base_url, url, httpx.Headers(headers), httpx.Headers(keyed))
            self._routes[called.path] = known
        return known[1], known[2], known[3]

    def _timeout_for(self, timeout: Timeout) -> httpx.Timeout:
        if timeout is NOT_GIVEN:
            return self.timeout
        return check_timeout(timeout)

    def _exchange_limits(
        self, timeout: httpx.Timeout
    ) -> tuple[dict[str, float | None], float | None]:
        """The request's timeout extension, and how long the whole exchange may take; worked out
        once for the client's own timeout, which every call without one of its own uses."""
        known = self._limits
        if known is None or known[0] is not timeout:
            known = (timeout, timeout.as_dict(), _deadline.exchange_seconds(timeout))
            if timeout is self.timeout:
                self._limits = known
        return known[1], known[2]

    def _retries_for(self, max_retries: int | None) -> int:
        return self.max_retries if max_retries is None else check_max_retries(max_retries)

    def _server_retries_for(self, retry_server_errors: bool | None) -> bool:
        if retry_server_errors is None:
            return self.retry_server_errors
        return check_flag("retry_server_errors", retry_server_errors)

    # --- the flows: what to do, written once for both clients ---

    def _generation(
        self,
        fields: dict[str, Any],
        max_cost: Budget | None,
        timeout: Timeout,
        max_retries: int | None,
        retry_server_errors: bool | None,
    ) -> _Flow[Generation]:
        """generate()'s flow: the request checked and priced (nothing is sent if it is refused),
        then sent under this call's options."""
        body, cost = prepare_request(fields, max_cost)
        return self._generate_flow(
            body,
            cost,
            timeout,
            self._retries_for(max_retries),
            self._server_retries_for(retry_server_errors),
        )

    def _generate_flow(
        self,
        body: dict[str, Any],
        cost: Decimal,
        timeout: Timeout,
        max_retries: int,
        retry_server_errors: bool,
    ) -> Generator[_Step, httpx.Response | None, Generation]:
        chosen = self._timeout_for(timeout)
        timeouts, seconds = self._exchange_limits(chosen)
        request = self._request_for(operation(GENERATE), body, timeouts, keyed=True)
        what = (
            f"seed {body['seed']}, {body['width']}x{body['height']}, {body['steps']} steps, "
            f"{body['image_num']} image(s)"
        )
        attempt = 0
        while True:
            started = time.perf_counter()
            # Links are timed from before the API could have issued them, so expires_at is
            # never later than the storage host's own expiry.
            sent: datetime = datetime.now(UTC)
            error: NovitaError
            read = functools.partial(parse_generation, body=body, cost=cost, sent=sent)

            try:
                response = yield _Send(request, seconds, what, read)
            except httpx.TransportError as exc:
                error = _connection_error(exc, request)
                retryable = isinstance(exc, _retry.UNSENT_ERRORS)
                retry_after = None
            else:
                assert response is not None
                reach("api.answered")
                if logger.isEnabledFor(logging.DEBUG):
                    logger.debug(
                        "%s %s -> %d in %.1f ms (attempt %d)",
                        request.method,
                        request.url,
                        response.status_code,
                        (time.perf_counter() - started) * 1000,
                        attempt + 1,
                    )
                if response.is_success:
                    return read(response)
                retry_after = _retry.retry_after(response.headers)
                error = status_error(response, retry_after)
                retryable = _retry.retryable_answer(
                    response.status_code, error.reason, retry_server_errors
                )
            if not retryable:
                raise error
            yield from _pause_or_raise(attempt, max_retries, retry_after, error)
            attempt += 1

    def _balance_flow(
        self, timeout: Timeout, max_retries: int | None
    ) -> Generator[_Step, httpx.Response | None, Balance]:
        """balance()'s flow: a GET the spec says is never billed (`x-billed: never`), so every
        failure that may pass (a connection error, a timeout, 408, 429, 5xx) is tried again.
        Were the spec ever to say otherwise, it would be retried as carefully as a generation."""
        free = operation(BALANCE).free
        chosen = self._timeout_for(timeout)
        timeouts, seconds = self._exchange_limits(chosen)
        request = self._request_for(operation(BALANCE), None, timeouts, keyed=True)
        retries = self._retries_for(max_retries)
        attempt = 0
        while True:
            error: NovitaError
            try:
                response = yield _Send(request, seconds, "the balance", billable=not free)
            except httpx.TransportError as exc:
                error = _connection_error(exc, request, billable=not free)
                if not (free or isinstance(exc, _retry.UNSENT_ERRORS)):
                    raise error from exc
                retry_after = None
            else:
                assert response is not None
                if response.is_success:
                    return parse_balance(response)
                retry_after = _retry.retry_after(response.headers)
                error = status_error(response, retry_after, billable=not free)
                retryable = (
                    _retry.retryable_status(response.status_code)
                    if free
                    else _retry.retryable_answer(response.status_code, error.reason, False)
                )
                if not retryable:
                    raise error
            yield from _pause_or_raise(attempt, retries, retry_after, error)
            attempt += 1

    def build_image_request(
        self,
        url: str | httpx.URL,
        timeout: Timeout = NOT_GIVEN,
        image: GeneratedImage | None = None,
    ) -> httpx.Request:
        """The bare GET of an image link, as every download (and every hop of its redirects)
        sends it: no key, and of an injected client's default headers only those any download
        needs. ImageDownloadError for a link that cannot be fetched at all (a host no lookup
        can take, a port out of range): that image only is lost."""
        check_url(url)
        if image is not None:
            check_image(image)
        return self._image_get(url, self._timeout_for(timeout), image)

    def _image_get(
        self, url: str | httpx.URL, seconds: httpx.Timeout, image: GeneratedImage | None
    ) -> httpx.Request:
        try:
            request = self._http.build_request("GET", url, timeout=seconds)
        except (httpx.InvalidURL, ValueError) as error:  # idna's errors are ValueErrors too
            raise _unfetchable(image, url, str(error)) from None
        problem = unreachable(request.url)
        if problem is not None:
            raise _unfetchable(image, url, problem)
        # An injected client may carry default headers (a key, cookies, tracing ids): none of
        # them may reach a storage host, only what any download needs.
        request.headers = httpx.Headers(
            [
                (name, value)
                for name, value in request.headers.multi_items()
                if name in IMAGE_HEADERS
            ]
        )
        return request

    def _download_flow(
        self, image: GeneratedImage, sink: IO[bytes], timeout: Timeout, max_bytes: int
    ) -> Generator[_Step, httpx.Response | None, str]:
        """Stream one image into `sink`; return its type, as its bytes say."""
        check_image(image)
        check_max_bytes(max_bytes)
        check_not_expired(image)
        seconds = _deadline.exchange_seconds(self._timeout_for(timeout))
        url: str | httpx.URL = image.url
        attempt = redirects = 0
        while True:
            sink.seek(0)
            sink.truncate()
            request = self._image_get(url, self._timeout_for(timeout), image)
            receiver = ImageReceiver(image, sink, max_bytes)
            try:
                response = yield _Fetch(request, receiver, seconds)
            except httpx.TransportError as exc:
                late = isinstance(exc, httpx.TimeoutException)
                what = "took longer than its timeout" if late else "failed"
                error: ImageDownloadError = ImageDownloadError(
                    f"the download of image {image.index} {what}: {type(exc).__name__}: {exc}"
                )
                error.__cause__ = exc
                retry_after = None
            else:
                assert response is not None
                if response.is_success:
                    assert receiver.found is not None
                    return receiver.found
                hop = next_hop(request.url, response.status_code, response.headers, redirects)
                if hop is not None:
                    url = hop
                    redirects += 1
                    continue
                error = storage_error(image, response.status_code, receiver.error_head)
                if not _retry.retryable_status(response.status_code):
                    raise error
                retry_after = _retry.retry_after(response.headers)
            yield from _pause_or_raise(attempt, self.max_retries, retry_after, error)
            attempt += 1

    def _save_flow(
        self,
        generation: Generation,
        directory: str | os.PathLike[str],
        metadata: bool | Mapping[str, Any],
        on_saved: Callable[[Path], Any] | None,
        timeout: Timeout,
        max_bytes: int,
    ) -> Generator[_Step, httpx.Response | None, list[Path]]:
        check_generation(generation, check_metadata(metadata))
        check_max_bytes(max_bytes)
        self._timeout_for(timeout)
        folder = Path(check_directory(directory))
        folder.mkdir(parents=True, exist_ok=True)
        paths: list[Path] = []
        failures: list[tuple[GeneratedImage, NovitaError]] = []
        for image in generation.images:
            try:
                with staged_file(folder) as handle:
                    found = yield from self._download_flow(image, handle, timeout, max_bytes)
                    reach("image.downloaded")
                    path = publish(handle, folder / file_name(generation, image, found))
                reach("image.published")
            except ImageDownloadError as error:
                # One image that fails must not cost the others of a generation paid for.
                logger.warning("%s", error)
                failures.append((image, error))
                continue
            if metadata:
                sidecar_path = path.with_name(path.name + ".json")
                more = metadata if isinstance(metadata, Mapping) else {}
                write_json_atomically(sidecar_path, sidecar(generation, image) | dict(more))
            paths.append(path)
            if on_saved is not None:
                on_saved(path)
        if failures:
            raise SaveIncompleteError(generation, paths, failures)
        return paths

    # --- batches: planned here, run by each client ---

    def _batch(
        self,
        requests: Iterable[Mapping[str, Any]],
        concurrency: int,
        images_per_minute: int | None,
        max_total_cost: Budget | None,
        on_result: object = None,
    ) -> tuple[list[PlannedRequest], ImagePacer | None, list[Self]]:
        pacer = None if images_per_minute is None else ImagePacer(images_per_minute)
        # AsyncFluxSchnell awaits what on_result returns; FluxSchnell cannot.
        check_callback("on_result", on_result, awaited=self._http_client_type is httpx.AsyncClient)
        plan = plan_batch(
            check_requests(requests),
            images_per_minute=images_per_minute,
            max_total_cost=max_total_cost,
        )
        return plan, pacer, self.lanes(concurrency)


def _pause_or_raise(
    attempt: int, max_retries: int, retry_after: float | None, error: NovitaError
) -> Generator[_Step, httpx.Response | None, None]:
    """Wait before retry number attempt + 1, or raise `error` when the policy says stop."""
    delay = _retry.retry_delay(attempt, max_retries, retry_after)
    if delay is None:
        raise error
    logger.info("retrying in %.2f s after: %s", delay, error)
    yield _Sleep(delay)


def _connection_error(
    exc: httpx.TransportError, request: httpx.Request, *, billable: bool = True
) -> APIConnectionError:
    where = f"{request.method} {request.url.copy_with(query=None)}"
    # Only a request that never left cannot have run: anything later may follow a billed task.
    sent = billable and not isinstance(exc, _retry.UNSENT_ERRORS)
    note = "; the call may have been billed, so it was not retried" if sent else ""
    error: APIConnectionError
    if isinstance(exc, httpx.TimeoutException):
        error = APITimeoutError(f"{where} timed out ({type(exc).__name__}){note}")
    else:
        error = APIConnectionError(f"{where} failed: {type(exc).__name__}: {exc}{note}")
    error.possibly_billed = sent
    error.__cause__ = exc
    return error


def _unfetchable(
    image: GeneratedImage | None, url: str | httpx.URL, why: str
) -> ImageDownloadError:
    which = f" of image {image.index}" if image is not None else ""
    return ImageDownloadError(f"the link{which} cannot be fetched: {why}: {show(str(url), 120)}")


def _image(image: dict[str, Any], index: int, sent: datetime) -> GeneratedImage:
    """The client's view of a conforming image: its TTL a number, its type the request's name
    for it, and what the spec does not name kept (in a dict of its own, as the generated
    model's `additional_properties` keeps it)."""
    ttl = int(image["image_url_ttl"])  # an integer, or a string of digits
    return GeneratedImage(
        url=image["image_url"],
        ttl=ttl,
        type=canonical_image_type(image["image_type"]),
        expires_at=link_expiry(sent, ttl),
        index=index,
        extra=_unnamed(image, _image_fields()),
    )


def _unnamed(fields: dict[str, Any], named: frozenset[str]) -> dict[str, Any]:
    """The fields the spec does not name, in a dict of their own (most answers have none)."""
    if fields.keys() <= named:
        return {}
    return {name: value for name, value in fields.items() if name not in named}


@cache
def _image_fields() -> frozenset[str]:
    """The fields of an answer's image the spec names."""
    return frozenset(_compiled_response_schema()["properties"]["images"]["items"]["properties"])
