"""The client over respx, where money and secrets are at stake: what a key may hold, what reaches a
storage host, whose timeout applies, what is retried, and downloads as storage hosts serve them."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import pytest
import respx

from novita_flux import (
    APIConnectionError,
    APITimeoutError,
    AsyncFluxSchnell,
    FluxSchnell,
    GeneratedImage,
    ImageDownloadError,
    ImageExpiredError,
    InternalServerError,
    SaveIncompleteError,
    ValidationError,
    _spec,
)
from tests.support import (
    API_URL,
    KEY,
    MAGIC,
    Sleeps,
    error_body,
    generation_of,
    image_url,
    success_body,
)

# --- the key ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "sk-live\nX-Injected: yes",  # a header injection
        "sk-live\x00rest",
        "sk-live\r",
        "sk-\tlive",
        "sk-live key",
        " sk-live",  # a space around a key is refused, as README says, never silently dropped
        "sk-live ",
        "sk-live\n",
        "sk-lïve",
        "sk-\u00a0live",
    ],
)
def test_a_key_that_could_not_travel_in_a_header_is_refused_without_being_shown(
    key: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="novita_flux")
    for make in (lambda: FluxSchnell(api_key=key), lambda: AsyncFluxSchnell(api_key=key)):
        with pytest.raises(ValidationError, match="api_key") as raised:
            make()
        error = raised.value
        assert (error.field, error.value) == ("api_key", "****")
        assert "sk-" not in str(error)
        assert "live" not in str(error) + repr(error)
    if "\x00" not in key:  # an environment cannot hold a NUL at all
        monkeypatch.setenv("NOVITA_API_KEY", key)  # the same from the environment
        with pytest.raises(ValidationError, match="the key is not shown"):
            FluxSchnell()
    assert "live" not in caplog.text


def test_a_space_around_a_key_is_named_by_its_place_and_nothing_is_sent() -> None:
    with respx.mock:
        route = respx.post(API_URL).respond(200, json=success_body())
        with pytest.raises(ValidationError) as raised:
            FluxSchnell(api_key=f"{KEY} ").generate("x")
    assert not route.called
    said = str(raised.value)
    assert f"character {len(KEY) + 1} of {len(KEY) + 1} of the key is U+0020 (a space)" in said
    assert KEY not in said


# --- what reaches a storage host ----------------------------------------------------------------


def test_an_image_host_gets_no_header_of_an_injected_client_beyond_the_allow_list() -> None:
    http = httpx.Client(
        headers={"X-Api-Key": "secret-1", "Authorization": "Bearer secret-2", "X-Trace": "t"},
        cookies={"session": "secret-3"},
    )
    with respx.mock:
        hop = "https://storage.example.com/elsewhere/0.png"
        first = respx.get(image_url()).respond(302, headers={"Location": hop})
        second = respx.get(hop).respond(200, content=MAGIC["png"])
        FluxSchnell(api_key=KEY, http_client=http).download(generation_of("png").images[0])
    for route in (first, second):  # the redirect's hop too: httpx would re-add the cookie there
        sent = route.calls.last.request.headers
        assert set(sent.keys()) <= {"host", "connection", "user-agent", "accept", "accept-encoding"}
        assert "secret" not in str(sent.raw)


@pytest.mark.parametrize("client_type", [FluxSchnell, AsyncFluxSchnell])
def test_a_base_url_changed_after_the_client_was_made_gets_requests_but_never_the_key(
    client_type: type[FluxSchnell] | type[AsyncFluxSchnell],
) -> None:
    # The key goes to the origin the client was made for: a base_url set later to another
    # host (a typo, a proxy, a test double) is sent the request, as before, and no key.
    elsewhere = "http://elsewhere.example"
    balance = _spec.response_example(_spec.BALANCE)
    with respx.mock:
        respx.post(API_URL).respond(200, json=success_body())
        generation = respx.post(elsewhere + _spec.operation(_spec.GENERATE).path)
        generation.respond(200, json=success_body())
        reading = respx.get(elsewhere + _spec.operation(_spec.BALANCE).path)
        reading.respond(200, json=balance)
        flux = client_type(api_key=KEY)
        if isinstance(flux, AsyncFluxSchnell):

            async def run(flux: AsyncFluxSchnell) -> None:
                await flux.generate("x")  # the API's own route is worked out first
                flux.base_url = elsewhere
                await flux.generate("x")
                await flux.balance()

            asyncio.run(run(flux))
        else:
            flux.generate("x")
            flux.base_url = elsewhere
            flux.generate("x")
            flux.balance()
    for route in (generation, reading):
        assert route.call_count == 1
        assert "authorization" not in route.calls.last.request.headers
        assert KEY not in str(route.calls.last.request.headers.raw)


def test_an_api_request_keeps_the_injected_clients_headers() -> None:
    http = httpx.Client(headers={"X-Trace": "t"})
    with respx.mock:
        route = respx.post(API_URL).respond(200, json=success_body())
        FluxSchnell(api_key=KEY, http_client=http).generate("x")
    assert route.calls.last.request.headers["X-Trace"] == "t"


# --- whose timeout ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("http_timeout", "ours", "expected"),
    [
        (None, "not given", 60.0),  # httpx's own 5 s default is nobody's choice: ours applies
        (12.0, "not given", 12.0),  # the injected client's owner chose: kept
        (12.0, 3.0, 3.0),  # timeout= always wins
        (None, 3.0, 3.0),
    ],
)
def test_an_injected_client_keeps_the_60_s_default_unless_someone_chose_a_timeout(
    http_timeout: float | None, ours: object, expected: float
) -> None:
    http = httpx.Client() if http_timeout is None else httpx.Client(timeout=http_timeout)
    options = {} if ours == "not given" else {"timeout": ours}
    flux = FluxSchnell(api_key=KEY, http_client=http, **options)  # type: ignore[arg-type]
    with respx.mock:
        route = respx.post(API_URL).respond(200, json=success_body())
        flux.generate("x")
    assert flux.timeout.read == expected
    assert route.calls.last.request.extensions["timeout"]["read"] == expected


# --- what is retried ----------------------------------------------------------------------------


def test_retry_server_errors_is_set_per_client_per_call_and_by_with_options(
    sleeps: Sleeps,
) -> None:
    with respx.mock:
        route = respx.post(API_URL).respond(500, json=error_body(500, "TASK_FAILED"))
        calls = []
        for flux, per_call in [
            (FluxSchnell(api_key=KEY), None),
            (FluxSchnell(api_key=KEY), True),
            (FluxSchnell(api_key=KEY, retry_server_errors=True), None),
            (FluxSchnell(api_key=KEY, retry_server_errors=True), False),
            (FluxSchnell(api_key=KEY).with_options(retry_server_errors=True), None),
        ]:
            before = route.call_count
            with pytest.raises(InternalServerError, match="may have been billed"):
                flux.generate("x", retry_server_errors=per_call)
            calls.append(route.call_count - before)
    assert calls == [1, 3, 3, 1, 3]


def test_a_bare_gateway_error_is_raised_as_possibly_billed(sleeps: Sleeps) -> None:
    with respx.mock:
        route = respx.post(API_URL).respond(504, text="<html>504 Gateway Time-out</html>")
        with pytest.raises(InternalServerError) as raised:
            FluxSchnell(api_key=KEY).generate("x")
    assert route.call_count == 1
    assert raised.value.possibly_billed
    assert "may have been billed" in str(raised.value)


@pytest.mark.parametrize("value", [1, "yes", None])
def test_retry_server_errors_must_be_true_or_false(value: object) -> None:
    with pytest.raises(ValidationError, match=r"retry_server_errors: .* is not True or False"):
        FluxSchnell(api_key=KEY, retry_server_errors=value)  # type: ignore[arg-type]


def test_a_timeout_after_the_request_left_is_possibly_billed_and_a_refused_connect_is_not(
    sleeps: Sleeps,
) -> None:
    with respx.mock:
        respx.post(API_URL).mock(side_effect=httpx.ReadTimeout("slow"))
        with pytest.raises(APITimeoutError) as late:
            FluxSchnell(api_key=KEY).generate("x")
        respx.post(API_URL).mock(side_effect=httpx.ConnectError("refused"))
        with pytest.raises(APIConnectionError) as refused:
            FluxSchnell(api_key=KEY).generate("x")
    assert late.value.possibly_billed
    assert "may have been billed" in str(late.value)
    assert not refused.value.possibly_billed
    assert "billed" not in str(refused.value)


def test_a_generation_stopped_on_the_wire_names_the_request_it_may_have_paid_for(
    sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    # Ctrl-C while the POST is out: no answer, no task id, so the note must say which request
    # (seed, size, steps, images) may have been billed, for the caller to look it up.
    def stop(request: httpx.Request) -> httpx.Response:
        raise KeyboardInterrupt

    with respx.mock:
        respx.post(API_URL).mock(side_effect=stop)
        with caplog.at_level(logging.WARNING), pytest.raises(KeyboardInterrupt) as stopped:
            FluxSchnell(api_key=KEY).generate("x", width=512, height=768, seed=7, image_num=2)
    text = (
        "stopped while the request (seed 7, 512x768, 4 steps, 2 image(s)) was on the wire: it "
        "may have been billed, and no answer was read, so no task id is known"
    )
    assert stopped.value.__notes__ == [f"novita-flux: {text}"]
    assert str(stopped.value.error) == text  # type: ignore[attr-defined]
    assert stopped.value.error.possibly_billed is True  # type: ignore[attr-defined]
    assert [r.getMessage() for r in caplog.records] == [f"KeyboardInterrupt: {text}"]


# --- downloads as storage hosts serve them ------------------------------------------------------


def test_a_link_served_as_octet_stream_is_judged_by_its_bytes() -> None:
    with respx.mock:
        respx.get(image_url(0, "webp")).respond(
            200, content=MAGIC["webp"], headers={"Content-Type": "application/octet-stream"}
        )
        data = FluxSchnell(api_key=KEY).download(generation_of("webp").images[0])
    assert data == MAGIC["webp"]


S3_EXPIRED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Request has expired</Message><Expires>2026-11-30T00:00:00Z</Expires></Error>"
)


@pytest.mark.parametrize(
    "body",
    [S3_EXPIRED, b"<Error><Code>ExpiredRequest</Code><Message>expired</Message></Error>"],
)
def test_a_storage_host_saying_the_link_expired_is_image_expired_error(
    body: bytes, sleeps: Sleeps
) -> None:
    with respx.mock:
        route = respx.get(image_url()).respond(403, content=body)
        with pytest.raises(ImageExpiredError, match="has expired"):
            FluxSchnell(api_key=KEY).download(generation_of("png").images[0])
    assert route.call_count == 1
    assert sleeps == []


def test_another_403_from_a_storage_host_is_a_plain_download_error() -> None:
    with respx.mock:
        respx.get(image_url()).respond(
            403, content=b"<Error><Code>SignatureDoesNotMatch</Code></Error>"
        )
        with pytest.raises(ImageDownloadError) as raised:
            FluxSchnell(api_key=KEY).download(generation_of("png").images[0])
    assert not isinstance(raised.value, ImageExpiredError)
    assert "SignatureDoesNotMatch" in str(raised.value)


@pytest.mark.parametrize("image_type", ["png", "jpeg", "webp"])
def test_an_image_cut_short_is_fetched_again_and_never_kept(
    image_type: str, tmp_path: Path, sleeps: Sleeps
) -> None:
    whole = MAGIC[image_type]
    with respx.mock:
        route = respx.get(image_url(0, image_type))
        route.side_effect = [httpx.Response(200, content=whole[: len(whole) - 3])] * 3
        with pytest.raises(SaveIncompleteError, match="before the image did"):
            FluxSchnell(api_key=KEY).save(generation_of(image_type), tmp_path)
        assert route.call_count == 3  # downloads cost nothing: retried like a dropped connection
        assert list(tmp_path.iterdir()) == []
        route.side_effect = [
            httpx.Response(200, content=whole[:-3]),
            httpx.Response(200, content=whole),
        ]
        (path,) = FluxSchnell(api_key=KEY).save(generation_of(image_type), tmp_path)
    assert path.read_bytes() == whole


def test_an_image_link_with_no_stated_expiry_is_never_refused_before_trying() -> None:
    image = GeneratedImage(image_url(), 0, "png", None, 0)
    assert not image.expired
    with respx.mock:
        respx.get(image_url()).respond(200, content=MAGIC["png"])
        assert FluxSchnell(api_key=KEY).download(image) == MAGIC["png"]
