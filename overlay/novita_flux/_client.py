"""FluxSchnell and AsyncFluxSchnell: the clients a user imports.

Each mirrors the other method for method; all they add to the shared base is how to carry out
a flow's steps with their own httpx client (`_drive`, `_carry_out`).
"""

from __future__ import annotations

import io
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Self

import httpx

from novita_flux import _deadline, _interrupts, _retry
from novita_flux._arguments import check_callback, check_http_request
from novita_flux._balance import Balance, preflight
from novita_flux._base_client import (
    NO_AUTH,
    Budget,
    ResultT,
    _BaseClient,
    _Fetch,
    _Flow,
    _Send,
    _Sleep,
)
from novita_flux._batch import (
    AsyncSend,
    BatchResult,
    OnResult,
    Withdrawn,
    run_async,
    run_sync,
    total_cost,
)
from novita_flux._config import (
    NOT_GIVEN,
    POOL_LIMITS,
    USER_AGENT,
    Timeout,
    check_flag,
    ssl_context,
)
from novita_flux._constants import (
    DEFAULT_CONCURRENCY,
    DEFAULT_HEIGHT,
    DEFAULT_IMAGE_NUM,
    DEFAULT_MAX_RETRIES,
    DEFAULT_STEPS,
    DEFAULT_WIDTH,
    LOGGER_NAME,
    MAX_IMAGE_BYTES,
)
from novita_flux._errors import NovitaError, status_error
from novita_flux._faultpoints import reach
from novita_flux._images import image_index
from novita_flux._models import GeneratedImage, Generation

logger = logging.getLogger(LOGGER_NAME)


class FluxSchnell(_BaseClient[httpx.Client]):
    """Synchronous client for FLUX.1 [schnell] text to image.

    The API key comes from `api_key` or NOVITA_API_KEY, the base URL (an origin such as
    https://api.novita.ai) from `base_url`, NOVITA_BASE_URL or the spec's server; plain http is
    refused for any host but this machine unless `allow_insecure`. Pass your own `http_client`
    to control proxies, limits or transports: it keeps working with auth, and it is not closed
    by this client.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: Timeout = NOT_GIVEN,
        max_retries: int = DEFAULT_MAX_RETRIES,
        retry_server_errors: bool = False,
        allow_insecure: bool = False,
        http_client: httpx.Client | None = None,
    ) -> None:
        super().__init__(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            retry_server_errors=retry_server_errors,
            allow_insecure=allow_insecure,
            http_client=http_client,
            http_client_type=httpx.Client,
        )

    def generate(
        self,
        prompt: str,
        *,
        width: int = DEFAULT_WIDTH,
        height: int = DEFAULT_HEIGHT,
        steps: int = DEFAULT_STEPS,
        seed: int | None = None,
        image_num: int = DEFAULT_IMAGE_NUM,
        response_image_type: str | None = None,
        max_cost: Budget | None = None,
        timeout: Timeout = NOT_GIVEN,
        max_retries: int | None = None,
        retry_server_errors: bool | None = None,
    ) -> Generation:
        """Generate images; every argument is checked against the spec before anything is sent.

        `seed=None` draws a random seed (reported as `Generation.seed`); `response_image_type`
        defaults to the spec's default (png); `max_cost` (USD) refuses a dearer request.
        `retry_server_errors` (default: the client's, False) also retries 5xx answers that may
        follow a billed task, which can pay twice.
        """
        fields = {
            "prompt": prompt,
            "width": width,
            "height": height,
            "steps": steps,
            "seed": seed,
            "image_num": image_num,
            "response_image_type": response_image_type,
        }
        flow = self._generation(fields, max_cost, timeout, max_retries, retry_server_errors)
        return self._drive(flow)

    def generate_many(
        self,
        requests: Iterable[Mapping[str, Any]],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        images_per_minute: int | None = None,
        max_total_cost: Budget | None = None,
        on_result: OnResult | None = None,
        timeout: Timeout = NOT_GIVEN,
        max_retries: int | None = None,
        retry_server_errors: bool | None = None,
        check_balance: bool = False,
    ) -> list[BatchResult]:
        """Run many requests (dicts of `generate`'s fields), at most `concurrency` at a time:
        on threads for FluxSchnell, as tasks for AsyncFluxSchnell.

        Every request is checked and priced first; `max_total_cost` refuses the whole batch
        before anything is sent, and so does `check_balance` (InsufficientBalanceError) when the
        account's available balance is below the batch's price (a balance that cannot be read
        is a warning on the `novita_flux` logger, and the batch goes on). With
        `images_per_minute`, requests are released so that no rolling minute carries more
        images. Returns one BatchResult per request, in input order, holding its Generation or
        its exception; `on_result` sees each one as it finishes, one call at a time (it need
        not be thread-safe; AsyncFluxSchnell also takes a coroutine function, whose awaits may
        interleave with another call's); if it raises, no further request is sent and the
        exception is raised once those in flight are done.
        A batch stopped from outside (Ctrl-C; for AsyncFluxSchnell, a cancellation too:
        task.cancel(), asyncio.timeout, wait_for, a failing TaskGroup sibling) sends nothing
        more; requests already sent are finished (each within its timeout: the API bills them
        anyway) and reported before the KeyboardInterrupt or CancelledError goes on, carrying
        every result so far as `.results`.
        """
        plan, pacer, lanes = self._batch(
            requests, concurrency, images_per_minute, max_total_cost, on_result
        )
        retries = self._retries_for(max_retries)
        server_retries = self._server_retries_for(retry_server_errors)

        def sender(lane: FluxSchnell) -> Callable[[dict[str, Any], Decimal], Generation]:
            def send(body: dict[str, Any], cost: Decimal) -> Generation:
                flow = lane._generate_flow(body, cost, timeout, retries, server_retries)
                return lane._drive(flow)

            return send

        try:
            if check_balance:
                self._preflight(total_cost(plan))
            return run_sync(
                plan,
                [sender(lane) for lane in lanes],
                concurrency=concurrency,
                pacer=pacer,
                on_result=on_result,
            )
        finally:
            for lane in lanes[1:]:
                lane.close()

    def balance(self, *, timeout: Timeout = NOT_GIVEN, max_retries: int | None = None) -> Balance:
        """The account's balance, in exact USD. Reading it is free, so every failure that may
        pass is tried again (up to `max_retries`, default the client's); errors are the same
        typed errors as a generation's."""
        return self._drive(self._balance_flow(timeout, max_retries))

    def _preflight(self, cost: Decimal) -> None:
        try:
            balance: Balance | NovitaError = self.balance()
        except NovitaError as error:
            balance = error
        notice = preflight(cost, balance, "batch")
        if notice is not None:
            logger.warning("%s", notice)

    def download(
        self,
        image: GeneratedImage,
        *,
        timeout: Timeout = NOT_GIVEN,
        max_bytes: int = MAX_IMAGE_BYTES,
    ) -> bytes:
        """The image's bytes, checked to be a whole PNG, JPEG or WebP (one other than the type
        promised is kept, with a warning: it was paid for); the API key is never sent."""
        buffer = io.BytesIO()
        self._drive(self._download_flow(image, buffer, timeout, max_bytes))
        return buffer.getvalue()

    def save(
        self,
        generation: Generation,
        directory: str | os.PathLike[str],
        *,
        metadata: bool | Mapping[str, Any] = False,
        on_saved: Callable[[Path], Any] | None = None,
        timeout: Timeout = NOT_GIVEN,
        max_bytes: int = MAX_IMAGE_BYTES,
    ) -> list[Path]:
        """Stream each image to a file in `directory`, atomically; return the paths.

        Files are named after the request (`<prompt>_<w>x<h>_s<steps>_seed<seed>_<i>.<ext>`):
        saving the same image again finds the existing file, and a different file already
        there is never replaced (`-2` is appended). With `metadata`, a `<file>.json` sidecar
        records how to reproduce the image (a mapping adds its fields to it). `on_saved` is
        called with each path as it lands.
        """
        saved, landed = _keeping(on_saved)
        flow = self._save_flow(generation, directory, metadata, landed, timeout, max_bytes)
        try:
            return self._drive(flow)
        except KeyboardInterrupt as stop:
            _interrupts.while_saving(stop, generation, saved, _unsaved(generation, saved))
            raise

    def send(
        self, request: httpx.Request, *, authenticate: bool = True, stream: bool = False
    ) -> httpx.Response:
        """Send a request made by `build_request` or `build_image_request` exactly as it is,
        through this client's connections, and return the answer, whatever its status: no
        check, no retry, no redirect followed. The API key is added when `authenticate` and the
        request goes to the API's own origin, never elsewhere. With `stream=True` the body is
        not read: read it and close the response yourself. A connection failure raises httpx's
        own exception. The request's own timeouts apply (connect, read, write, pool), not the
        limit on the whole exchange that `generate` keeps."""
        check_http_request(request)
        auth = self._auth if check_flag("authenticate", authenticate) else None
        return self._http.send(
            request, auth=auth, stream=check_flag("stream", stream), follow_redirects=False
        )

    def close(self) -> None:
        """Close the connections this client opened (an injected http_client stays open)."""
        if self._owns_http:
            self._http.close()

    def _new_http(self) -> httpx.Client:
        # Our own sync pools hold every exchange to its deadline (see _deadline); imported here,
        # as httpx imports httpcore only with its first transport.
        from novita_flux._transport import DeadlineTransport

        transport = DeadlineTransport(ssl_context(), POOL_LIMITS)
        return httpx.Client(transport=transport, headers={"User-Agent": USER_AGENT})

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _drive(self, flow: _Flow[ResultT]) -> ResultT:
        try:
            step = next(flow)
            while True:
                if isinstance(step, _Sleep):
                    _retry.sleep(step.seconds)
                    step = flow.send(None)
                    continue
                try:
                    response = self._carry_out(step)
                except httpx.TransportError as exc:
                    step = flow.throw(exc)
                except KeyboardInterrupt as stop:
                    if isinstance(step, _Send) and step.billable:  # it cannot be waited for
                        _interrupts.in_flight(stop, step.what)
                    raise
                else:
                    try:
                        step = flow.send(response)
                    except KeyboardInterrupt as stop:
                        if isinstance(step, _Send) and step.billable:  # the answer in hand
                            _read_answer(stop, step, response)
                        raise
        except StopIteration as done:
            result: ResultT = done.value  # what the flow returned: StopIteration does not say
            return result
        finally:
            flow.close()  # a flow left half-way removes what it staged

    def _carry_out(self, step: _Send | _Fetch) -> httpx.Response:
        with _deadline.deadline_in(step.seconds) as deadline:
            if isinstance(step, _Send):
                if step.billable:
                    reach("api.sending")
                return self._http.send(step.request, auth=NO_AUTH, follow_redirects=False)
            response = self._http.send(step.request, stream=True, auth=None, follow_redirects=False)
            try:
                receive = step.receiver.feed if response.is_success else step.receiver.keep_error
                if response.is_success:
                    step.receiver.expect_length(response.headers.get("Content-Length"))
                    reach("image.downloading")
                for chunk in response.iter_bytes():
                    # Between chunks too: an injected client's connections have no deadline.
                    if deadline is not None and time.monotonic() > deadline:
                        raise httpx.ReadTimeout("the download took longer than its timeout")
                    receive(chunk)
                if response.is_success:
                    step.receiver.finish()
            finally:
                response.close()
            return response


class AsyncFluxSchnell(_BaseClient[httpx.AsyncClient]):
    """Asynchronous client: every method of FluxSchnell, awaited."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: Timeout = NOT_GIVEN,
        max_retries: int = DEFAULT_MAX_RETRIES,
        retry_server_errors: bool = False,
        allow_insecure: bool = False,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            retry_server_errors=retry_server_errors,
            allow_insecure=allow_insecure,
            http_client=http_client,
            http_client_type=httpx.AsyncClient,
        )

    async def generate(
        self,
        prompt: str,
        *,
        width: int = DEFAULT_WIDTH,
        height: int = DEFAULT_HEIGHT,
        steps: int = DEFAULT_STEPS,
        seed: int | None = None,
        image_num: int = DEFAULT_IMAGE_NUM,
        response_image_type: str | None = None,
        max_cost: Budget | None = None,
        timeout: Timeout = NOT_GIVEN,
        max_retries: int | None = None,
        retry_server_errors: bool | None = None,
    ) -> Generation:
        """Generate images; every argument is checked against the spec before anything is sent.

        `seed=None` draws a random seed (reported as `Generation.seed`); `response_image_type`
        defaults to the spec's default (png); `max_cost` (USD) refuses a dearer request.
        `retry_server_errors` (default: the client's, False) also retries 5xx answers that may
        follow a billed task, which can pay twice.
        """
        fields = {
            "prompt": prompt,
            "width": width,
            "height": height,
            "steps": steps,
            "seed": seed,
            "image_num": image_num,
            "response_image_type": response_image_type,
        }
        flow = self._generation(fields, max_cost, timeout, max_retries, retry_server_errors)
        return await self._drive(flow)

    async def generate_many(
        self,
        requests: Iterable[Mapping[str, Any]],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        images_per_minute: int | None = None,
        max_total_cost: Budget | None = None,
        on_result: OnResult | None = None,
        timeout: Timeout = NOT_GIVEN,
        max_retries: int | None = None,
        retry_server_errors: bool | None = None,
        check_balance: bool = False,
    ) -> list[BatchResult]:
        """Run many requests (dicts of `generate`'s fields), at most `concurrency` at a time:
        on threads for FluxSchnell, as tasks for AsyncFluxSchnell.

        Every request is checked and priced first; `max_total_cost` refuses the whole batch
        before anything is sent, and so does `check_balance` (InsufficientBalanceError) when the
        account's available balance is below the batch's price (a balance that cannot be read
        is a warning on the `novita_flux` logger, and the batch goes on). With
        `images_per_minute`, requests are released so that no rolling minute carries more
        images. Returns one BatchResult per request, in input order, holding its Generation or
        its exception; `on_result` sees each one as it finishes, one call at a time (it need
        not be thread-safe; AsyncFluxSchnell also takes a coroutine function, whose awaits may
        interleave with another call's); if it raises, no further request is sent and the
        exception is raised once those in flight are done.
        A batch stopped from outside (Ctrl-C; for AsyncFluxSchnell, a cancellation too:
        task.cancel(), asyncio.timeout, wait_for, a failing TaskGroup sibling) sends nothing
        more; requests already sent are finished (each within its timeout: the API bills them
        anyway) and reported before the KeyboardInterrupt or CancelledError goes on, carrying
        every result so far as `.results`.
        """
        plan, pacer, lanes = self._batch(
            requests, concurrency, images_per_minute, max_total_cost, on_result
        )
        retries = self._retries_for(max_retries)
        server_retries = self._server_retries_for(retry_server_errors)

        def sender(lane: AsyncFluxSchnell) -> AsyncSend:
            async def send(
                body: dict[str, Any], cost: Decimal, proceed: Callable[[], bool]
            ) -> Generation:
                flow = lane._generate_flow(body, cost, timeout, retries, server_retries)
                return await lane._drive(flow, proceed)

            return send

        try:
            if check_balance:
                await self._preflight(total_cost(plan))
            return await run_async(
                plan,
                [sender(lane) for lane in lanes],
                concurrency=concurrency,
                pacer=pacer,
                on_result=on_result,
            )
        finally:
            for lane in lanes[1:]:
                await lane.close()

    async def balance(
        self, *, timeout: Timeout = NOT_GIVEN, max_retries: int | None = None
    ) -> Balance:
        """The account's balance, in exact USD. Reading it is free, so every failure that may
        pass is tried again (up to `max_retries`, default the client's); errors are the same
        typed errors as a generation's."""
        return await self._drive(self._balance_flow(timeout, max_retries))

    async def _preflight(self, cost: Decimal) -> None:
        try:
            balance: Balance | NovitaError = await self.balance()
        except NovitaError as error:
            balance = error
        notice = preflight(cost, balance, "batch")
        if notice is not None:
            logger.warning("%s", notice)

    async def download(
        self,
        image: GeneratedImage,
        *,
        timeout: Timeout = NOT_GIVEN,
        max_bytes: int = MAX_IMAGE_BYTES,
    ) -> bytes:
        """The image's bytes, checked to be a whole PNG, JPEG or WebP (one other than the type
        promised is kept, with a warning: it was paid for); the API key is never sent."""
        buffer = io.BytesIO()
        await self._drive(self._download_flow(image, buffer, timeout, max_bytes))
        return buffer.getvalue()

    async def save(
        self,
        generation: Generation,
        directory: str | os.PathLike[str],
        *,
        metadata: bool | Mapping[str, Any] = False,
        on_saved: Callable[[Path], Any] | None = None,
        timeout: Timeout = NOT_GIVEN,
        max_bytes: int = MAX_IMAGE_BYTES,
    ) -> list[Path]:
        """Stream each image to a file in `directory`, atomically; return the paths.

        Files are named after the request (`<prompt>_<w>x<h>_s<steps>_seed<seed>_<i>.<ext>`):
        saving the same image again finds the existing file, and a different file already
        there is never replaced (`-2` is appended). With `metadata`, a `<file>.json` sidecar
        records how to reproduce the image (a mapping adds its fields to it). `on_saved` is
        called with each path as it lands.
        """
        import asyncio

        saved, landed = _keeping(on_saved)
        flow = self._save_flow(generation, directory, metadata, landed, timeout, max_bytes)
        try:
            return await self._drive(flow)
        except asyncio.CancelledError as stop:  # a download is free: it stops at once
            _interrupts.while_saving(stop, generation, saved, _unsaved(generation, saved))
            raise

    async def send(
        self, request: httpx.Request, *, authenticate: bool = True, stream: bool = False
    ) -> httpx.Response:
        """Send a request made by `build_request` or `build_image_request` exactly as it is,
        through this client's connections, and return the answer, whatever its status: no
        check, no retry, no redirect followed. The API key is added when `authenticate` and the
        request goes to the API's own origin, never elsewhere. With `stream=True` the body is
        not read: read it and close the response yourself. A connection failure raises httpx's
        own exception. The request's own timeouts apply (connect, read, write, pool), not the
        limit on the whole exchange that `generate` keeps."""
        check_http_request(request)
        auth = self._auth if check_flag("authenticate", authenticate) else None
        return await self._http.send(
            request, auth=auth, stream=check_flag("stream", stream), follow_redirects=False
        )

    async def close(self) -> None:
        """Close the connections this client opened (an injected http_client stays open)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _drive(
        self, flow: _Flow[ResultT], proceed: Callable[[], bool] | None = None
    ) -> ResultT:
        """Carry out a flow's steps; `proceed`, when given, is asked just before each API request
        leaves, and a False withdraws it (Withdrawn): a batch that has stopped sends nothing."""
        try:
            step = next(flow)
            while True:
                if isinstance(step, _Sleep):
                    await _retry.async_sleep(step.seconds)
                    step = flow.send(None)
                    continue
                try:
                    if isinstance(step, _Send) and step.billable:
                        response = await self._send_heard(step, flow, proceed)
                    else:
                        response = await self._carry_out(step)
                except httpx.TransportError as exc:
                    step = flow.throw(exc)
                else:
                    step = flow.send(response)
        except StopIteration as done:
            result: ResultT = done.value  # what the flow returned: StopIteration does not say
            return result
        finally:
            flow.close()  # a flow left half-way removes what it staged

    async def _send_heard(
        self, step: _Send, flow: _Flow[Any], proceed: Callable[[], bool] | None
    ) -> httpx.Response:
        """Send the API request in a task of its own, so that cancelling the caller does not
        cancel it: once the request may have reached the API, its task runs and is billed
        whether or not we listen, and its answer holds the only links to what was paid for.
        A cancelled call waits for that answer (bounded by the exchange's own deadline), reads
        it, and re-raises the cancellation carrying it (see _interrupts); a second
        cancellation stops the wait at once."""
        import asyncio

        started = False

        async def send() -> httpx.Response:
            nonlocal started
            # The task starts a loop turn later: the caller may have stopped meanwhile.
            if proceed is not None and not proceed():
                raise Withdrawn
            started = True
            reach("api.sending")
            return await self._carry_out(step)

        exchange = asyncio.ensure_future(send())
        try:
            return await asyncio.shield(exchange)
        except asyncio.CancelledError as stop:
            if not started:  # it never left, and now never will
                exchange.cancel()
                raise
            try:
                await asyncio.wait((exchange,))
            except asyncio.CancelledError as again:
                exchange.cancel()
                _interrupts.in_flight(again, step.what)
                raise
            _heard(stop, exchange, flow)
            raise

    async def _carry_out(self, step: _Send | _Fetch) -> httpx.Response:
        import asyncio  # here, not at the top: `import novita_flux` stays as light as httpx

        try:
            async with asyncio.timeout(step.seconds):  # the whole exchange, headers and body
                return await self._exchange(step)
        except TimeoutError:
            raise httpx.ReadTimeout(
                "the exchange took longer than its timeout", request=step.request
            ) from None

    async def _exchange(self, step: _Send | _Fetch) -> httpx.Response:
        if isinstance(step, _Send):
            return await self._http.send(step.request, auth=NO_AUTH, follow_redirects=False)
        response = await self._http.send(
            step.request, stream=True, auth=None, follow_redirects=False
        )
        try:
            receive = step.receiver.feed if response.is_success else step.receiver.keep_error
            if response.is_success:
                step.receiver.expect_length(response.headers.get("Content-Length"))
                reach("image.downloading")
            async for chunk in response.aiter_bytes():
                receive(chunk)
            if response.is_success:
                step.receiver.finish()
        finally:
            await response.aclose()
        return response


def _heard(stop: BaseException, exchange: Any, flow: _Flow[Any]) -> None:
    """Read the answer a cancelled call waited for, exactly as the call would have, and put
    what it says on the cancellation (nothing more is sent: a retry it asks for is dropped)."""
    try:
        try:
            response = exchange.result()
        except httpx.TransportError as exc:
            flow.throw(exc)
        else:
            flow.send(response)
    except StopIteration as done:
        _interrupts.answered(stop, generation=done.value)
    except NovitaError as error:
        _interrupts.answered(stop, error=error)
    else:  # the flow asked to retry: the answer was one the API does not bill
        _interrupts.answered(stop)


def _read_answer(stop: BaseException, step: _Send, response: httpx.Response) -> None:
    """The call was stopped with its answer in hand: read it as the flow would have, and put
    what it says on the exception that stops it."""
    if not response.is_success:
        _interrupts.answered(stop, error=status_error(response))
        return
    try:
        generation = step.read(response) if step.read is not None else None
    except NovitaError as error:
        _interrupts.answered(stop, error=error)
        return
    _interrupts.answered(stop, generation=generation)


def _keeping(
    on_saved: Callable[[Path], Any] | None,
) -> tuple[list[Path], Callable[[Path], Any]]:
    """A list of the files saved so far, and the on_saved that fills it (and calls the
    caller's own)."""
    saved: list[Path] = []
    check_callback("on_saved", on_saved)

    def landed(path: Path) -> None:
        saved.append(path)
        if on_saved is not None:
            on_saved(path)

    return saved, landed


def _unsaved(generation: Generation, saved: list[Path]) -> list[GeneratedImage]:
    done = {image_index(path.name) for path in saved}
    return [image for image in generation.images if image.index not in done]
