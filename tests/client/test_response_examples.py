"""Explicit examples that pin, value for value, how answers are read: a 200 turned into a
Generation or a ResponseValidationError, an error answer turned into its exception, when and how
long to wait before trying again, and the client's checked configuration.

The property tests (test_*_properties.py) say what holds for every body; these say exactly what
comes out for each named case, messages included, so that a flipped comparison, a changed
literal, a dropped field or a changed default in _errors, _retry or _base_client fails a test.
Every value is fixed (times, jitter, clocks): nothing depends on luck or on the wall clock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import respx

from novita_flux import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AsyncFluxSchnell,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    FluxSchnell,
    GeneratedImage,
    Generation,
    ImageDownloadError,
    ImageExpiredError,
    InternalServerError,
    MissingAPIKeyError,
    NotFoundError,
    NovitaError,
    PermissionDeniedError,
    RateLimitError,
    ResponseValidationError,
    SaveIncompleteError,
    ValidationError,
    _base_client,
    _retry,
)
from novita_flux._base_client import (
    _APIKeyAuth,
    _connection_error,
    _Send,
    _Sleep,
    parse_generation,
)
from novita_flux._config import NOT_GIVEN, USER_AGENT
from novita_flux._errors import status_error
from novita_flux._request import estimate_cost
from novita_flux._schema import show
from tests.support import API_URL, KEY, Sleeps, error_body, success_body

SENT = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
COST = Decimal("0.0123")
# What the client sent: the requested type (webp) differs from every answer's, so a salvaged
# image that falls back to it is told apart.
REQUEST: dict[str, Any] = {
    "prompt": "a fox",
    "width": 64,
    "height": 64,
    "steps": 4,
    "seed": 7,
    "image_num": 1,
    "response_image_type": "webp",
}
URL = "https://storage.example.com/out/0.png?X-Amz-Signature=abc"
URL2 = "https://storage.example.com/out/1.jpeg?X-Amz-Signature=def"
DEFAULT_BASE = "https://api.novita.ai"
BILLED_NOTE = (
    "; the call may have been billed, so it is not retried unless retry_server_errors=True"
)


def ok(content: object) -> httpx.Response:
    raw = content if isinstance(content, bytes) else json.dumps(content).encode()
    return httpx.Response(200, content=raw)


def image(url: str = URL, ttl: object = 3600, image_type: str = "png", **more: Any) -> dict:
    return {"image_url": url, "image_url_ttl": ttl, "image_type": image_type, **more}


def answer(*images: dict, task: object = None, **more: Any) -> dict[str, Any]:
    return {"images": list(images), "task": {"task_id": "t-1"} if task is None else task, **more}


def parsed(payload: object) -> Generation:
    return parse_generation(ok(payload), REQUEST, COST, SENT)


def refused(content: object) -> ResponseValidationError:
    with pytest.raises(ResponseValidationError) as raised:
        parse_generation(ok(content), REQUEST, COST, SENT)
    return raised.value


def at(seconds: int) -> datetime:
    return SENT + timedelta(seconds=seconds)


# --- parse_generation: what a conforming 200 becomes -------------------------------------------


@pytest.mark.parametrize(
    ("ttl", "image_type", "expected_ttl", "expected_type", "expires_at"),
    [
        (3600, "png", 3600, "png", at(3600)),
        ("3600", "png", 3600, "png", at(3600)),
        (3600.0, "webp", 3600, "webp", at(3600)),
        ("0", "jpeg", 0, "jpeg", None),
        (0, "png", 0, "png", None),
        (1, "PNG", 1, "png", at(1)),
        ("604800", "WebP", 604800, "webp", at(604800)),
        (60, "jpg", 60, "jpeg", at(60)),
        (60, "JPG", 60, "jpeg", at(60)),
        (60, "JPEG", 60, "jpeg", at(60)),
    ],
)
def test_parse_generation_reads_ttl_as_int_type_by_its_request_name_and_expiry_from_sent(
    ttl: object, image_type: str, expected_ttl: int, expected_type: str, expires_at: object
) -> None:
    (read,) = parsed(answer(image(ttl=ttl, image_type=image_type))).images
    assert read == GeneratedImage(URL, expected_ttl, expected_type, expires_at, 0, {})
    assert type(read.ttl) is int
    assert (read.url, read.ttl, read.type, read.expires_at, read.index, read.extra) == (
        URL,
        expected_ttl,
        expected_type,
        expires_at,
        0,
        {},
    )


def test_parse_generation_keeps_task_seed_request_cost_raw_and_every_unknown_field() -> None:
    payload = answer(
        image(ttl=3600.0, nsfw_detection_result={"valid": True, "confidence": 0.01}),
        image(URL2, ttl="0", image_type="JPG", nsfw_detection_result=None),
        task={"task_id": "t-9", "status": "TASK_STATUS_SUCCEED", "eta": 0},
        extra={"seed": "18446744073709551615"},
        videos=[],
    )
    generation = parsed(payload)
    assert generation.task_id == "t-9"
    assert generation.seed == 7
    assert generation.request is REQUEST
    assert generation.cost == COST
    # The raw body as it came: the TTL 3600.0 stays a float here, only the image reads 3600.
    assert generation.raw == payload
    assert generation.raw["images"][0]["image_url_ttl"] == 3600.0
    assert type(generation.raw["images"][0]["image_url_ttl"]) is float
    assert generation.images == [
        GeneratedImage(
            URL,
            3600,
            "png",
            at(3600),
            0,
            {"nsfw_detection_result": payload["images"][0]["nsfw_detection_result"]},
        ),
        GeneratedImage(URL2, 0, "jpeg", None, 1, {"nsfw_detection_result": None}),
    ]
    assert [im.extra for im in generation.images] == [
        {"nsfw_detection_result": {"valid": True, "confidence": 0.01}},
        {"nsfw_detection_result": None},
    ]
    assert [im.index for im in generation.images] == [0, 1]


def test_parse_generation_refuses_an_empty_image_list_keeping_the_task() -> None:
    # The spec's minItems: an answer with no image is no answer to a paid call (issue 20).
    error = refused(answer())
    assert error.problem == "images: [] is not an array of 1 to 8 items"
    assert (error.task_id, error.images, error.body) == ("t-1", [], answer())


# --- parse_generation: what a broken 200 becomes ----------------------------------------------

TTL_RULE = "an integer >= 0 or a string matching '^[0-9]+$'"
TYPE_RULE = "a string matching '^([Pp][Nn][Gg]|[Ww][Ee][Bb][Pp]|[Jj][Pp][Ee]?[Gg])$'"
SPACED = "https://storage.example.com/a b.png"
# A link salvaged from a broken answer whose TTL could not be read: no expiry assumed.
UNTIMED = GeneratedImage(URL, 0, "png", None, 0, {})


@pytest.mark.parametrize(
    ("payload", "problem", "task_id", "images"),
    [
        pytest.param(
            {"images": image(), "task": {"task_id": "t-1"}},
            f"images: {show(image())} is not an array of 1 to 8 items",
            "t-1",
            [],
            id="images-an-object",
        ),
        pytest.param(
            answer(image("/out/0.png")),
            "images.0.image_url: '/out/0.png' is not a URI",
            "t-1",
            [],
            id="relative-url",
        ),
        pytest.param(
            answer(image("not a link")),
            "images.0.image_url: 'not a link' is not a URI",
            "t-1",
            [],
            id="not-a-uri",
        ),
        pytest.param(
            answer(image(ttl=1), task={}),
            "task.task_id: missing; required: a string",
            None,
            [GeneratedImage(URL, 1, "png", at(1), 0, {})],
            id="task-without-task-id",
        ),
        pytest.param(
            answer(image(ttl=1), task={"task_id": 5}),
            "task.task_id: 5 is not a string",
            None,
            [GeneratedImage(URL, 1, "png", at(1), 0, {})],
            id="task-id-an-int",
        ),
        pytest.param(
            {"task": {"task_id": "t-1"}},
            "images: missing; required: an array of 1 to 8 items",
            "t-1",
            [],
            id="no-images",
        ),
        pytest.param(
            {"images": [image(ttl=120)]},
            "task: missing; required: an object",
            None,
            [GeneratedImage(URL, 120, "png", at(120), 0, {})],
            id="no-task",
        ),
        pytest.param(
            answer(image(ttl=-1)),
            f"images.0.image_url_ttl: -1 is not {TTL_RULE}",
            "t-1",
            [UNTIMED],
            id="ttl-negative",
        ),
        pytest.param(
            answer(image(ttl="-1")),
            f"images.0.image_url_ttl: '-1' is not {TTL_RULE}",
            "t-1",
            [UNTIMED],
            id="ttl-negative-string",
        ),
        pytest.param(
            answer(image(ttl="soon")),
            f"images.0.image_url_ttl: 'soon' is not {TTL_RULE}",
            "t-1",
            [UNTIMED],
            id="ttl-not-digits",
        ),
        pytest.param(
            answer(image(ttl=3600.5)),
            f"images.0.image_url_ttl: 3600.5 is not {TTL_RULE}",
            "t-1",
            [GeneratedImage(URL, 3600, "png", at(3600), 0, {})],
            id="ttl-fraction",
        ),
        pytest.param(
            answer(image(ttl=True)),
            f"images.0.image_url_ttl: True is not {TTL_RULE}",
            "t-1",
            [UNTIMED],
            id="ttl-bool",
        ),
        pytest.param(
            answer(image(ttl=60, image_type="gif", note="x")),
            f"images.0.image_type: 'gif' is not {TYPE_RULE}",
            "t-1",
            # The type falls back to the one requested (webp), the unknown field is kept.
            [GeneratedImage(URL, 60, "webp", at(60), 0, {"note": "x"})],
            id="unknown-image-type",
        ),
        pytest.param(
            answer(image(ttl=60), image(URL2, ttl=30, image_type="JPG"), image(7)),
            "images.2.image_url: 7 is not a URI",
            "t-1",
            [
                GeneratedImage(URL, 60, "png", at(60), 0, {}),
                GeneratedImage(URL2, 30, "jpeg", at(30), 1, {}),
            ],
            id="third-image-broken",
        ),
        # JSON Schema's `pattern` is ECMA-262's: `$` is the very end, and `\d` ASCII's digits
        # (issue 20: "png\n" was read as a PNG whose type was 'png\n').
        pytest.param(
            answer(image(ttl=60, image_type="png\n")),
            f"images.0.image_type: 'png\\n' is not {TYPE_RULE}",
            "t-1",
            [GeneratedImage(URL, 60, "webp", at(60), 0, {})],
            id="image-type-with-a-trailing-newline",
        ),
        pytest.param(
            answer(image(ttl="3600\n")),
            f"images.0.image_url_ttl: '3600\\n' is not {TTL_RULE}",
            "t-1",
            [GeneratedImage(URL, 3600, "png", at(3600), 0, {})],
            id="ttl-with-a-trailing-newline",
        ),
        # `format: uri` is RFC 3986's: no space, no character outside ASCII.
        pytest.param(
            answer(image(SPACED)),
            f"images.0.image_url: {show(SPACED)} is not a URI",
            "t-1",
            [GeneratedImage(SPACED, 3600, "png", at(3600), 0, {})],  # still kept: paid for
            id="url-with-a-space",
        ),
        pytest.param([1, 2], "body: [1, 2] is not an object", None, [], id="json-array"),
        pytest.param("text", "body: 'text' is not an object", None, [], id="json-string"),
        pytest.param(None, "body: None is not an object", None, [], id="json-null"),
    ],
)
def test_a_broken_200_is_refused_with_exact_problem_task_id_images_and_payload(
    payload: object, problem: str, task_id: str | None, images: list[GeneratedImage]
) -> None:
    error = refused(payload)
    assert error.problem == problem
    assert error.task_id == task_id
    assert error.images == images
    assert [im.extra for im in error.images] == [im.extra for im in images]
    assert error.body == payload
    assert error.possibly_billed is True
    assert (error.status_code, error.request, error.cost) == (200, REQUEST, COST)
    assert error.request is REQUEST
    kept = f"task {task_id}" if task_id is not None else "no task id could be read"
    assert str(error) == (
        f"the API's 200 response breaks the contract: {problem}; the call was likely billed "
        f"({kept}; {len(images)} image link(s) kept on this error)"
    )
    if images:
        assert error.generation == Generation(task_id or "", images, 7, REQUEST, COST, payload)
    else:
        assert error.generation is None


def test_a_200_that_is_not_json_keeps_its_text_and_no_task_or_image() -> None:
    error = refused(b"<html>oops</html>")
    assert error.problem == "the body is not JSON (Expecting value: line 1 column 1 (char 0))"
    assert (error.body, error.task_id, error.images) == ("<html>oops</html>", None, [])
    assert (error.request, error.cost, error.generation) == (REQUEST, COST, None)
    assert error.possibly_billed is True
    assert str(error) == (
        "the API's 200 response breaks the contract: the body is not JSON (Expecting value: "
        "line 1 column 1 (char 0)); the call was likely billed (no task id could be read; 0 "
        "image link(s) kept on this error)"
    )


def test_a_200_cut_short_names_where_the_json_broke() -> None:
    error = refused(b'{"images": [')
    assert error.problem == "the body is not JSON (Expecting value: line 1 column 13 (char 12))"
    assert error.body == '{"images": ['


@pytest.mark.parametrize(
    ("length", "kept"),
    [
        (2000, "x" * 2000),
        (2001, "x" * 2000 + "... [1 more]"),
        (2500, "x" * 2000 + "... [500 more]"),
    ],
)
def test_a_non_json_200_body_is_kept_whole_up_to_2000_characters_then_cut_with_a_count(
    length: int, kept: str
) -> None:
    assert refused(b"x" * length).body == kept


def test_a_ttl_too_long_for_an_integer_is_refused_with_the_reason_and_the_links_kept() -> None:
    # It matches the spec's digits, but Python will not read 5,000 digits as an int.
    error = refused(answer(image(ttl="9" * 5000)))
    assert error.problem.startswith("ValueError('Exceeds the limit (4300 digits)")
    assert error.task_id == "t-1"
    assert [found.url for found in error.images] == [URL]


@pytest.mark.parametrize("failure", [KeyError("images"), TypeError("no"), ValueError("bad")])
def test_a_reading_step_that_refuses_a_conforming_body_gives_its_repr_as_the_problem(
    failure: Exception, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(_: object) -> object:
        raise failure

    monkeypatch.setattr(_base_client, "canonical_image_type", refuse)
    payload = answer(image(ttl=5))
    error = refused(payload)
    assert error.problem == repr(failure)
    assert (error.task_id, error.body) == ("t-1", payload)
    assert error.images == [GeneratedImage(URL, 5, "png", at(5), 0, {})]


# --- ResponseValidationError built directly ----------------------------------------------------


def test_response_validation_error_defaults_keep_the_text_and_nothing_else() -> None:
    response = httpx.Response(202, text="half")
    error = ResponseValidationError(response, "a problem")
    assert (error.response, error.status_code, error.problem) == (response, 202, "a problem")
    assert (error.body, error.task_id, error.images, error.request, error.cost) == (
        "half",
        None,
        [],
        None,
        None,
    )
    assert error.generation is None
    assert str(error) == (
        "the API's 202 response breaks the contract: a problem; the call was likely billed "
        "(no task id could be read; 0 image link(s) kept on this error)"
    )
    # An explicit payload, even None, is the parsed body: not replaced by the text.
    assert ResponseValidationError(response, "p", payload=None).body is None


def test_response_validation_error_generation_needs_images_and_the_request() -> None:
    response = httpx.Response(200, text="[]")
    read = GeneratedImage(URL, 10, "png", at(10), 0)
    no_request = ResponseValidationError(response, "p", payload={}, images=[read])
    assert no_request.generation is None
    no_cost = ResponseValidationError(response, "p", payload=[1], images=(read,), request=REQUEST)
    assert no_cost.images == [read]
    # No task id: "" on the Generation; no cost: 0; a body that is not an object: raw {}.
    assert no_cost.generation == Generation("", [read], 7, REQUEST, Decimal(0), {})
    full = ResponseValidationError(
        response, "p", payload={"a": 1}, task_id="t", images=[read], request=REQUEST, cost=COST
    )
    assert full.generation == Generation("t", [read], 7, REQUEST, COST, {"a": 1})
    assert str(full).endswith("(task t; 1 image link(s) kept on this error)")


# --- APIStatusError and status_error -----------------------------------------------------------


def answered(status: int, body: object = None, *, text: str | None = None, after=None):
    if text is not None:
        response = httpx.Response(status, text=text)
    else:
        response = httpx.Response(status, content=json.dumps(body).encode())
    return status_error(response, after) if after is not None else status_error(response)


def test_an_error_envelope_is_kept_field_by_field() -> None:
    envelope = {
        "code": 400,
        "reason": "INVALID_REQUEST_BODY",
        "message": "  steps: must be in [1, 100]  ",
        "metadata": {"task_id": "t-9", "field": "steps"},
    }
    error = answered(400, envelope, after=2.5)
    assert type(error) is BadRequestError
    assert (error.status_code, error.code, error.reason) == (400, 400, "INVALID_REQUEST_BODY")
    assert error.message == "  steps: must be in [1, 100]  "  # kept as sent
    assert error.metadata == {"task_id": "t-9", "field": "steps"}
    assert (error.task_id, error.retry_after, error.body) == ("t-9", 2.5, envelope)
    assert error.possibly_billed is False
    assert error.response.status_code == 400
    assert str(error) == "400 INVALID_REQUEST_BODY: steps: must be in [1, 100] (task_id=t-9)"


def test_status_error_has_no_retry_after_unless_given() -> None:
    assert answered(429, error_body(429, "RATE_LIMIT_EXCEEDED")).retry_after is None


def test_the_task_id_falls_back_to_task_task_id_and_the_message_says_billed() -> None:
    error = answered(500, {"reason": "TASK_FAILED", "message": "boom", "task": {"task_id": "t-2"}})
    assert type(error) is InternalServerError
    assert (error.task_id, error.code, error.metadata) == ("t-2", None, {})
    assert error.possibly_billed is True
    assert str(error) == "500 TASK_FAILED: boom (task_id=t-2)" + BILLED_NOTE


@pytest.mark.parametrize(
    ("envelope", "task_id"),
    [
        ({"metadata": {"task_id": "m"}, "task": {"task_id": "t"}}, "m"),
        ({"metadata": {"task_id": ""}, "task": {"task_id": "t"}}, ""),  # said, even empty
        ({"metadata": {"task_id": 5}, "task": {"task_id": "t"}}, "t"),
        ({"metadata": {}, "task": {"task_id": 5}}, None),
        ({"metadata": {}, "task": "t"}, None),
        ({"task_id": "top"}, None),
    ],
)
def test_the_task_id_is_metadata_first_then_task_and_only_a_string(
    envelope: dict, task_id: str | None
) -> None:
    error = answered(400, {"reason": "X", "message": "m", **envelope})
    assert error.task_id == task_id
    suffix = f" (task_id={task_id})" if task_id is not None else ""
    assert str(error) == f"400 X: m{suffix}"


def test_envelope_fields_of_the_wrong_type_are_read_as_absent() -> None:
    envelope = {"code": "400", "reason": 7, "message": {"a": 1}, "metadata": ["task_id"]}
    error = answered(400, envelope)
    assert type(error) is BadRequestError
    assert (error.code, error.reason, error.message, error.metadata) == (None, None, None, {})
    assert (error.task_id, error.body) == (None, envelope)
    assert error.possibly_billed is False
    assert str(error) == "400 Bad Request"


def test_a_boolean_code_is_not_a_code() -> None:
    assert answered(400, {"code": True, "reason": "X"}).code is None
    assert answered(400, {"code": 0, "reason": "X"}).code == 0


@pytest.mark.parametrize("reason", [["FAILED_TO_AUTH"], {"FAILED_TO_AUTH": 1}])
def test_an_unhashable_reason_is_ignored_and_the_status_decides(reason: object) -> None:
    error = answered(403, {"code": 403, "reason": reason, "message": "no"})
    assert type(error) is PermissionDeniedError
    assert error.reason is None
    assert str(error) == "403 Forbidden: no"


def test_a_lowercase_reason_is_not_a_known_one() -> None:
    error = answered(500, {"reason": "create_task_failed"})
    assert type(error) is InternalServerError
    assert error.possibly_billed is True
    assert str(error) == "500 create_task_failed" + BILLED_NOTE


def test_an_empty_message_adds_nothing_and_the_reason_phrase_stands_in_for_a_missing_reason() -> (
    None
):
    assert str(answered(400, {"reason": "ILLEGAL_PROMPT", "message": ""})) == "400 ILLEGAL_PROMPT"
    # Only spaces is no message either: no dangling colon.
    assert str(answered(400, {"reason": "ILLEGAL_PROMPT", "message": " \n "})) == (
        "400 ILLEGAL_PROMPT"
    )
    assert str(answered(418, {"message": "short and stout"})) == "418 I'm a teapot: short and stout"
    assert str(answered(404, {})) == "404 Not Found"
    assert str(answered(409, [1, 2])) == "409 Conflict"
    assert answered(409, [1, 2]).body == [1, 2]


def test_a_non_json_error_keeps_its_text_and_says_it() -> None:
    error = answered(502, text="<html>Bad Gateway</html>")
    assert type(error) is InternalServerError
    assert (error.body, error.reason, error.message, error.code) == (
        "<html>Bad Gateway</html>",
        None,
        None,
        None,
    )
    assert error.possibly_billed is True
    assert str(error) == "502 Bad Gateway: <html>Bad Gateway</html>" + BILLED_NOTE


def test_an_empty_error_body_adds_no_text() -> None:
    error = answered(503, text="")
    assert error.body == ""
    assert str(error) == "503 Service Unavailable" + BILLED_NOTE


def test_a_json_null_error_body_is_kept_as_its_text() -> None:
    error = answered(400, None)
    assert error.body == "null"
    assert str(error) == "400 Bad Request: null"


@pytest.mark.parametrize(
    ("length", "body", "shown"),
    [
        (200, "y" * 200, "y" * 200),
        (201, "y" * 201, "y" * 200 + "... [1 more]"),
        (2000, "y" * 2000, "y" * 200 + "... [1800 more]"),
        (2001, "y" * 2000 + "... [1 more]", "y" * 200 + "... [1801 more]"),
    ],
)
def test_a_long_text_error_body_is_kept_to_2000_and_shown_to_200_characters(
    length: int, body: str, shown: str
) -> None:
    error = answered(404, text="y" * length)
    assert error.body == body
    assert str(error) == f"404 Not Found: {shown}"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (402, APIStatusError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (405, APIStatusError),
        (408, APIStatusError),
        (409, APIStatusError),
        (428, APIStatusError),
        (429, RateLimitError),
        (499, APIStatusError),
        (500, InternalServerError),
        (502, InternalServerError),
        (503, InternalServerError),
        (504, InternalServerError),
        (599, InternalServerError),
    ],
)
def test_without_a_known_reason_the_status_picks_the_exception(
    status: int, expected: type[APIStatusError]
) -> None:
    for body in ({"reason": "SOMETHING_NEW", "message": "m"}, {"message": "m"}):
        assert type(answered(status, body)) is expected
    assert type(answered(status, text="plain")) is expected


@pytest.mark.parametrize(
    ("status", "reason", "expected", "billed"),
    [
        (400, "INVALID_REQUEST_BODY", BadRequestError, False),
        (400, "INVALID_IMAGE_SIZE", BadRequestError, False),
        (400, "ILLEGAL_PROMPT", BadRequestError, False),
        (403, "BILLING_BALANCE_NOT_ENOUGH", BadRequestError, False),
        (400, "MISSING_API_KEY", AuthenticationError, False),
        (400, "FAILED_TO_AUTH", AuthenticationError, False),
        (403, "INVALID_API_KEY", AuthenticationError, False),
        (401, "API_NOT_ALLOWED", PermissionDeniedError, False),
        (500, "API_NOT_FOUND", NotFoundError, False),
        (500, "RATE_LIMIT_EXCEEDED", RateLimitError, False),
        (400, "BILLING_FAILED", InternalServerError, True),
        (500, "CREATE_TASK_FAILED", InternalServerError, False),
        (404, "TASK_FAILED", InternalServerError, True),
        (429, "SERVICE_NOT_AVAILABLE", InternalServerError, False),
        (503, "SERVICE_NOT_AVAILABLE", InternalServerError, False),
    ],
)
def test_a_known_reason_picks_the_exception_and_billing_whatever_the_status(
    status: int, reason: str, expected: type[APIStatusError], billed: bool
) -> None:
    error = answered(status, {"code": status, "reason": reason, "message": "m"})
    assert type(error) is expected
    assert error.possibly_billed is billed
    assert str(error) == f"{status} {reason}: m" + (BILLED_NOTE if billed else "")


@pytest.mark.parametrize(
    ("status", "billed"), [(400, False), (429, False), (499, False), (500, True), (599, True)]
)
def test_without_a_known_reason_only_a_5xx_may_be_billed(status: int, billed: bool) -> None:
    assert answered(status, {"reason": "NEW"}).possibly_billed is billed
    assert answered(status, text="").possibly_billed is billed


def test_possibly_billed_defaults_per_class() -> None:
    assert NovitaError.possibly_billed is False
    assert ResponseValidationError.possibly_billed is True
    assert APIStatusError.possibly_billed is False
    assert ImageDownloadError.possibly_billed is False
    assert issubclass(ImageExpiredError, ImageDownloadError)
    assert issubclass(SaveIncompleteError, ImageDownloadError)
    assert issubclass(APITimeoutError, APIConnectionError)


# --- the other errors ---------------------------------------------------------------------------


def test_budget_exceeded_error_names_cost_budget_and_what() -> None:
    error = BudgetExceededError(Decimal("0.0030"), Decimal("0.0029"))
    assert (error.cost, error.budget) == (Decimal("0.0030"), Decimal("0.0029"))
    assert str(error) == "estimated cost $0.003 of this request exceeds the budget $0.0029"
    batch = BudgetExceededError(Decimal(1), Decimal("0.5"), "batch")
    assert str(batch) == "estimated cost $1.00 of this batch exceeds the budget $0.50"
    assert batch.possibly_billed is False


def test_validation_error_keeps_field_value_expected_and_message() -> None:
    error = ValidationError("width", 63, "an integer in [64, 2048]", "width: 63 is not ...")
    assert (error.field, error.value, error.expected) == ("width", 63, "an integer in [64, 2048]")
    assert str(error) == "width: 63 is not ..."
    assert isinstance(error, ValueError)
    assert error.args == ("width: 63 is not ...",)


def test_save_incomplete_error_lists_each_failure_with_its_link_and_expiry() -> None:
    images = [
        GeneratedImage(URL, 60, "png", at(60), 0),
        GeneratedImage(URL2, 0, "jpeg", None, 1),
        GeneratedImage(URL, 60, "png", at(60), 2),
    ]
    generation = Generation("t-5", images, 7, REQUEST, COST)
    expired = ImageExpiredError("link expired")
    failed = ImageDownloadError("HTTP 500")
    error = SaveIncompleteError(
        generation, [Path("a.png")], [(images[1], failed), (images[2], expired)]
    )
    assert (error.generation, error.saved) == (generation, [Path("a.png")])
    assert error.failures == [(images[1], failed), (images[2], expired)]
    assert str(error) == (
        "saved 1 of 3 image(s) of task t-5; not saved: "
        f"image 1 (HTTP 500) at {URL2}; "
        f"image 2 (link expired) at {URL} until 2024-01-02T03:05:05+00:00"
    )
    assert error.expired is False
    assert SaveIncompleteError(generation, (), [(images[2], expired)]).expired is True
    only_expired = SaveIncompleteError(generation, (), ((images[0], expired),))
    assert str(only_expired) == (
        f"saved 0 of 1 image(s) of task t-5; not saved: image 0 (link expired) at {URL} "
        "until 2024-01-02T03:05:05+00:00"
    )


# --- _retry: Retry-After ------------------------------------------------------------------------

NOW = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("0", 0.0),
        ("1.5", 1.5),
        (" 2 ", 2.0),
        ("120", 120.0),
        ("-1", 0.0),
        ("-0.5", 0.0),
        ("abc", None),
        ("", None),
        ("   ", None),
        ("nan", None),
        ("inf", math.inf),
        ("-inf", 0.0),
        ("Mon, 01 Jan 2024 12:00:30 GMT", 30.0),
        ("Mon, 01 Jan 2024 12:00:30 -0000", 30.0),
        ("Mon, 01 Jan 2024 14:00:30 +0200", 30.0),
        ("Mon, 01 Jan 2024 12:00:30", 30.0),
        ("Mon, 01 Jan 2024 12:00:00 GMT", 0.0),
        ("Mon, 01 Jan 2024 11:59:00 GMT", 0.0),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
        ("Fri, 31 Dec 9999 23:59:59 GMT", 251698190399.0),
        ("Mon, 32 Jan 2024 12:00:30 GMT", None),
    ],
)
def test_parse_retry_after_reads_seconds_and_http_dates_against_now(
    header: str | None, seconds: float | None
) -> None:
    assert _retry.parse_retry_after(header, NOW) == seconds
    if seconds is not None:
        assert type(_retry.parse_retry_after(header, NOW)) is float


def test_parse_retry_after_without_now_counts_from_the_present() -> None:
    header = format_datetime(datetime.now(UTC) + timedelta(seconds=100), usegmt=True)
    assert 97 <= _retry.parse_retry_after(header) <= 100  # type: ignore[operator]
    assert _retry.parse_retry_after("7") == 7.0


# --- _retry: backoff and retry_delay ------------------------------------------------------------


def fixed_jitter(monkeypatch: pytest.MonkeyPatch, draw: float) -> None:
    monkeypatch.setattr(_retry, "random", SimpleNamespace(random=lambda: draw))


@pytest.mark.parametrize(
    ("draw", "delays"),
    [
        (0.0, [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]),
        (0.5, [0.4375, 0.875, 1.75, 3.5, 7.0, 7.0, 7.0]),
        (1.0, [0.375, 0.75, 1.5, 3.0, 6.0, 6.0, 6.0]),
    ],
)
def test_backoff_doubles_from_half_a_second_to_eight_cut_by_up_to_a_quarter(
    draw: float, delays: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    fixed_jitter(monkeypatch, draw)
    assert [_retry.backoff(attempt) for attempt in (0, 1, 2, 3, 4, 5, 40)] == delays


def test_backoff_of_a_huge_attempt_is_capped_not_an_overflow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fixed_jitter(monkeypatch, 0.0)
    assert _retry.backoff(10**6) == 8.0


@pytest.mark.parametrize(
    ("attempt", "max_retries", "retry_after", "delay"),
    [
        (0, 0, None, None),
        (0, 0, 1.0, None),
        (1, 1, None, None),
        (2, 1, None, None),
        (2, 2, 1.0, None),
        (0, 1, None, 0.5),
        (1, 3, None, 1.0),
        (3, 4, None, 4.0),
        (0, 2, 0.0, 0.0),
        (0, 2, 3.5, 3.5),
        (1, 2, 60.0, 60.0),
        (0, 2, math.nextafter(60.0, math.inf), None),
        (0, 2, 61.0, None),
    ],
)
def test_retry_delay_waits_backoff_or_retry_after_up_to_60_s_and_gives_up_after_max_retries(
    attempt: int,
    max_retries: int,
    retry_after: float | None,
    delay: float | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fixed_jitter(monkeypatch, 0.0)
    assert _retry.retry_delay(attempt, max_retries, retry_after) == delay


def test_async_sleep_waits_the_given_seconds() -> None:
    asyncio.run(_retry.async_sleep(0))
    assert asyncio.run(asyncio.wait_for(_retry.async_sleep(0.001), 5)) is None


# --- _retry: what is retried --------------------------------------------------------------------

STATUSES = [200, 400, 408, 409, 429, 499, 500, 502, 503, 504, 599]


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("opted_in", [False, True])
@pytest.mark.parametrize("reason", [None, "SOMETHING_NEW"])
def test_retryable_answer_without_a_known_reason(
    status: int, opted_in: bool, reason: str | None
) -> None:
    expected = status in (408, 429) or (opted_in and status >= 500)
    assert _retry.retryable_answer(status, reason, opted_in) is expected


@pytest.mark.parametrize(
    ("status", "opted_in", "expected"),
    [
        (200, False, False),
        (400, False, False),
        (408, False, True),
        (429, False, True),
        (499, False, False),
        (499, True, False),
        (500, False, False),
        (500, True, True),
        (503, True, True),
        (599, True, True),
    ],
)
def test_retryable_answer_table_by_status(status: int, opted_in: bool, expected: bool) -> None:
    assert _retry.retryable_answer(status, None, opted_in) is expected


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize(
    "reason", ["RATE_LIMIT_EXCEEDED", "SERVICE_NOT_AVAILABLE", "CREATE_TASK_FAILED"]
)
def test_a_reason_never_billed_that_passes_with_time_is_retried_at_any_status(
    status: int, reason: str
) -> None:
    assert _retry.retryable_answer(status, reason, False) is True
    assert _retry.retryable_answer(status, reason, True) is True


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize(
    "reason",
    [
        "TASK_FAILED",  # server, possibly billed
        "BILLING_FAILED",  # server, possibly billed
        "INVALID_REQUEST_BODY",  # never billed, but it does not pass with time
        "BILLING_BALANCE_NOT_ENOUGH",
        "MISSING_API_KEY",
        "FAILED_TO_AUTH",
        "INVALID_API_KEY",
        "API_NOT_ALLOWED",
        "API_NOT_FOUND",
    ],
)
def test_other_known_reasons_follow_the_status_rule(status: int, reason: str) -> None:
    assert _retry.retryable_answer(status, reason, False) is (status in (408, 429))
    assert _retry.retryable_answer(status, reason, True) is (status in (408, 429) or status >= 500)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, False),
        (400, False),
        (404, False),
        (407, False),
        (408, True),
        (409, False),
        (428, False),
        (429, True),
        (430, False),
        (499, False),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
        (599, True),
    ],
)
def test_retryable_status_of_a_download(status: int, expected: bool) -> None:
    assert _retry.retryable_status(status) is expected


def test_only_failures_before_sending_are_unsent_errors() -> None:
    assert (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) == _retry.UNSENT_ERRORS


# --- _APIKeyAuth ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "url", "carries_key"),
    [
        (("https", "api.novita.ai", 443), "https://api.novita.ai/v3beta/x", True),
        (("https", "api.novita.ai", 443), "https://api.novita.ai:443/v3beta/x", True),
        (("https", "api.novita.ai", 443), "http://api.novita.ai/v3beta/x", False),
        (("https", "api.novita.ai", 443), "https://api.novita.ai:8443/v3beta/x", False),
        (("https", "api.novita.ai", 443), "https://storage.example.com/x.png", False),
        (("http", "localhost", 8080), "http://localhost:8080/x", True),
        (("http", "localhost", 8080), "http://localhost:8081/x", False),
        (("http", "localhost", 80), "http://localhost/x", True),
    ],
)
def test_the_key_goes_only_to_the_api_origin(
    origin: tuple[str, str, int], url: str, carries_key: bool
) -> None:
    auth = _APIKeyAuth(KEY, origin)
    request = httpx.Request("GET", url)
    flow = auth.auth_flow(request)
    assert next(flow) is request
    with pytest.raises(StopIteration):
        flow.send(httpx.Response(200))
    assert request.headers.get("Authorization") == (f"Bearer {KEY}" if carries_key else None)


def test_the_auth_repr_hides_the_key() -> None:
    assert repr(_APIKeyAuth(KEY, ("https", "api.novita.ai", 443))) == "<APIKeyAuth key=****>"


# --- the client's configuration -----------------------------------------------------------------


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("NOVITA_API_KEY", raising=False)
    monkeypatch.delenv("NOVITA_BASE_URL", raising=False)
    return monkeypatch


MISSING_KEY = (
    "no API key: pass api_key=... or set the NOVITA_API_KEY environment variable "
    "(create a key at https://novita.ai/settings/key-management)"
)


@pytest.mark.parametrize("key", [None, "", "   "])
def test_no_key_is_refused_with_where_to_get_one(key: str | None, no_env: object) -> None:
    with pytest.raises(MissingAPIKeyError) as raised:
        FluxSchnell(api_key=key)
    assert str(raised.value) == MISSING_KEY


def test_an_empty_key_given_is_refused_even_when_the_environment_has_one(
    no_env: pytest.MonkeyPatch,
) -> None:
    no_env.setenv("NOVITA_API_KEY", "sk-from-env")
    with pytest.raises(MissingAPIKeyError):
        FluxSchnell(api_key="")


def sent_with(flux: FluxSchnell) -> httpx.Request:
    with respx.mock:
        route = respx.post(flux.base_url + "/v3beta/flux-1-schnell").respond(
            200, json=success_body()
        )
        flux.generate("x", seed=1)
    return route.calls.last.request


def test_the_key_comes_from_the_argument_first_then_the_environment(
    no_env: pytest.MonkeyPatch,
) -> None:
    no_env.setenv("NOVITA_API_KEY", "sk-from-env")
    assert sent_with(FluxSchnell()).headers["Authorization"] == "Bearer sk-from-env"
    assert sent_with(FluxSchnell(api_key=KEY)).headers["Authorization"] == f"Bearer {KEY}"
    with pytest.raises(ValidationError, match="character 1 of 6 of the key is U"):
        FluxSchnell(api_key=" sk-x ")  # refused, never trimmed


def test_the_base_url_comes_from_the_argument_then_the_environment_then_the_spec(
    no_env: pytest.MonkeyPatch,
) -> None:
    assert FluxSchnell(api_key=KEY).base_url == DEFAULT_BASE
    no_env.setenv("NOVITA_BASE_URL", "http://localhost:9999/")
    assert FluxSchnell(api_key=KEY).base_url == "http://localhost:9999"
    given = FluxSchnell(api_key=KEY, base_url="https://proxy.example.com")
    assert given.base_url == "https://proxy.example.com"
    request = sent_with(given)
    assert str(request.url) == "https://proxy.example.com/v3beta/flux-1-schnell"
    assert request.method == "POST"
    assert request.headers["Authorization"] == f"Bearer {KEY}"


def test_plain_http_to_another_host_needs_allow_insecure(no_env: object) -> None:
    with pytest.raises(ValidationError) as raised:
        FluxSchnell(api_key=KEY, base_url="http://api.example.com")
    assert raised.value.field == "base_url"
    flux = FluxSchnell(api_key=KEY, base_url="http://api.example.com", allow_insecure=True)
    assert flux.base_url == "http://api.example.com"
    assert sent_with(flux).headers["Authorization"] == f"Bearer {KEY}"
    with pytest.raises(ValidationError) as flag:
        FluxSchnell(api_key=KEY, allow_insecure="yes")  # type: ignore[arg-type]
    assert (flag.value.field, flag.value.value) == ("allow_insecure", "yes")
    assert str(flag.value) == "allow_insecure: 'yes' is not True or False"


def test_an_http_client_of_the_wrong_kind_is_refused_naming_the_right_one() -> None:
    wrong = httpx.AsyncClient()
    with pytest.raises(ValidationError) as raised:
        FluxSchnell(api_key=KEY, http_client=wrong)  # type: ignore[arg-type]
    error = raised.value
    assert (error.field, error.value, error.expected) == ("http_client", wrong, "an httpx.Client")
    assert str(error) == f"http_client: {show(wrong)} is not an httpx.Client"


def test_defaults_and_repr_of_a_new_client(no_env: object) -> None:
    flux = FluxSchnell(api_key=KEY)
    assert (flux.timeout, flux.max_retries, flux.retry_server_errors) == (
        httpx.Timeout(60.0),
        2,
        False,
    )
    assert repr(flux) == (
        "FluxSchnell(base_url='https://api.novita.ai', timeout=Timeout(timeout=60.0), "
        "max_retries=2, retry_server_errors=False)"
    )
    other = FluxSchnell(api_key=KEY, timeout=None, max_retries=0, retry_server_errors=True)
    assert (other.timeout, other.max_retries, other.retry_server_errors) == (
        httpx.Timeout(None),
        0,
        True,
    )


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"max_retries": -1}, "max_retries", "max_retries: -1 is not an integer >= 0"),
        ({"max_retries": True}, "max_retries", "max_retries: True is not an integer >= 0"),
        (
            {"retry_server_errors": 1},
            "retry_server_errors",
            "retry_server_errors: 1 is not True or False",
        ),
        (
            {"timeout": 0},
            "timeout",
            "timeout: 0 is not a positive number of seconds, an httpx.Timeout or None",
        ),
    ],
)
def test_bad_client_options_are_refused_with_exact_messages(
    options: dict, field: str, message: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        FluxSchnell(api_key=KEY, **options)
    assert (raised.value.field, str(raised.value)) == (field, message)


def test_an_injected_client_keeps_its_own_timeout_gets_the_user_agent_and_stays_open() -> None:
    http = httpx.Client(timeout=7.0, headers={"User-Agent": "theirs/1"})
    with FluxSchnell(api_key=KEY, http_client=http) as flux:
        assert flux.timeout == httpx.Timeout(7.0)
        request = sent_with(flux)
    assert request.headers["User-Agent"] == USER_AGENT
    assert request.headers.get_list("User-Agent") == [USER_AGENT]
    assert request.extensions["timeout"]["read"] == 7.0
    assert not http.is_closed
    http.close()


def test_an_own_client_sends_the_user_agent_and_is_closed_with_the_client() -> None:
    with FluxSchnell(api_key=KEY) as flux:
        request = sent_with(flux)
        clone = flux.with_options(max_retries=0)
        clone.close()  # a clone shares the connections: closing it closes nothing
        assert not flux._http.is_closed
    assert request.headers.get_list("User-Agent") == [USER_AGENT]
    assert request.extensions["timeout"]["read"] == 60.0
    assert flux._http.is_closed


# --- with_options and per-call options ---------------------------------------------------------


def test_with_options_changes_only_what_is_given_and_shares_the_connections() -> None:
    base = FluxSchnell(api_key=KEY, timeout=30, max_retries=5, retry_server_errors=True)
    same = base.with_options()
    assert same is not base
    assert same._http is base._http
    assert (same.timeout, same.max_retries, same.retry_server_errors) == (
        httpx.Timeout(30.0),
        5,
        True,
    )
    changed = base.with_options(timeout=None, max_retries=0, retry_server_errors=False)
    assert (changed.timeout, changed.max_retries, changed.retry_server_errors) == (
        httpx.Timeout(None),
        0,
        False,
    )
    assert base.with_options(timeout=2.5).timeout == httpx.Timeout(2.5)
    assert base.with_options(timeout=NOT_GIVEN).timeout == httpx.Timeout(30.0)
    assert (base.timeout, base.max_retries, base.retry_server_errors) == (
        httpx.Timeout(30.0),
        5,
        True,
    )
    off = FluxSchnell(api_key=KEY).with_options(retry_server_errors=True)
    assert off.retry_server_errors is True


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_retries": -1}, "max_retries: -1 is not an integer >= 0"),
        ({"retry_server_errors": "yes"}, "retry_server_errors: 'yes' is not True or False"),
        (
            {"timeout": -1},
            "timeout: -1 is not a positive number of seconds, an httpx.Timeout or None",
        ),
    ],
)
def test_with_options_checks_what_it_is_given(options: dict, message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        FluxSchnell(api_key=KEY).with_options(**options)
    assert str(raised.value) == message


def test_per_call_retries_and_server_retries_fall_back_to_the_clients() -> None:
    flux = FluxSchnell(api_key=KEY, max_retries=4, retry_server_errors=True)
    assert [flux._retries_for(None), flux._retries_for(0), flux._retries_for(9)] == [4, 0, 9]
    assert flux._server_retries_for(None) is True
    assert flux._server_retries_for(False) is False
    assert FluxSchnell(api_key=KEY)._server_retries_for(None) is False
    assert FluxSchnell(api_key=KEY)._server_retries_for(True) is True
    with pytest.raises(ValidationError) as retries:
        flux._retries_for(-1)
    assert str(retries.value) == "max_retries: -1 is not an integer >= 0"
    with pytest.raises(ValidationError) as flag:
        flux._server_retries_for("x")  # type: ignore[arg-type]
    assert str(flag.value) == "retry_server_errors: 'x' is not True or False"
    assert flux._timeout_for(NOT_GIVEN) is flux.timeout
    assert flux._timeout_for(2.5) == httpx.Timeout(2.5)


# --- the generate flow: answers and transport failures ------------------------------------------


@pytest.fixture
def zero_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    fixed_jitter(monkeypatch, 0.0)


def generate_against(*answers: httpx.Response | Exception, **options: Any):
    with respx.mock:
        route = respx.post(API_URL)
        route.side_effect = list(answers)
        try:
            result: Any = FluxSchnell(api_key=KEY, **options).generate("x", seed=1)
        except NovitaError as error:
            result = error
    return result, route.call_count


def test_a_200_is_read_with_links_timed_from_the_send(sleeps: Sleeps) -> None:
    before = datetime.now(UTC)
    with respx.mock:
        route = respx.post(API_URL).respond(200, json=success_body(ttl=100))
        generation = FluxSchnell(api_key=KEY).generate("x", width=512, seed=1)
        calls = route.call_count
    after = datetime.now(UTC)
    assert calls == 1
    assert generation.task_id == "task-1"
    assert json.loads(route.calls.last.request.content) == generation.request
    assert generation.request["width"] == 512
    assert generation.cost == estimate_cost(512, 1024, 4, 1)
    (read,) = generation.images
    assert before + timedelta(seconds=100) <= read.expires_at <= after + timedelta(seconds=100)


def test_a_broken_200_is_never_retried(sleeps: Sleeps) -> None:
    error, calls = generate_against(httpx.Response(200, content=b"nope"), max_retries=3)
    assert (type(error), calls, sleeps) == (ResponseValidationError, 1, [])
    assert error.request["seed"] == 1


def test_an_error_answer_carries_its_retry_after(sleeps: Sleeps) -> None:
    answer_ = httpx.Response(400, headers={"Retry-After": "2"}, json=error_body(400, "X"))
    error, calls = generate_against(answer_)
    assert (type(error), calls, error.retry_after) == (BadRequestError, 1, 2.0)


@pytest.mark.parametrize(
    ("status", "reason", "options", "calls"),
    [
        (429, "X", {}, 3),
        (408, "X", {"max_retries": 1}, 2),
        (503, "SERVICE_NOT_AVAILABLE", {}, 3),
        (500, "TASK_FAILED", {}, 1),
        (500, "TASK_FAILED", {"retry_server_errors": True}, 3),
        (400, "X", {"retry_server_errors": True}, 1),
    ],
)
def test_the_flow_retries_exactly_what_the_policy_says(
    status: int, reason: str, options: dict, calls: int, sleeps: Sleeps, zero_jitter: None
) -> None:
    answers = [httpx.Response(status, json=error_body(status, reason))] * 3
    error, made = generate_against(*answers, **options)
    assert (made, error.status_code, error.reason) == (calls, status, reason)
    assert sleeps == [0.5, 1.0][: calls - 1]


def test_retries_wait_the_growing_backoff_then_succeed(sleeps: Sleeps, zero_jitter: None) -> None:
    busy = httpx.Response(503, json=error_body(503, "SERVICE_NOT_AVAILABLE"))
    generation, calls = generate_against(
        busy, busy, busy, httpx.Response(200, json=success_body()), max_retries=3
    )
    assert (generation.task_id, calls, sleeps) == ("task-1", 4, [0.5, 1.0, 2.0])


def test_retry_after_is_waited_instead_of_the_backoff(sleeps: Sleeps, zero_jitter: None) -> None:
    limited = httpx.Response(
        429, headers={"Retry-After": "3"}, json=error_body(429, "RATE_LIMIT_EXCEEDED")
    )
    generation, calls = generate_against(limited, httpx.Response(200, json=success_body()))
    assert (generation.task_id, calls, sleeps) == ("task-1", 2, [3.0])


def test_a_retry_after_over_60_s_is_raised_at_once(sleeps: Sleeps) -> None:
    limited = httpx.Response(
        429, headers={"Retry-After": "61"}, json=error_body(429, "RATE_LIMIT_EXCEEDED")
    )
    error, calls = generate_against(limited)
    assert (type(error), calls, sleeps, error.retry_after) == (RateLimitError, 1, [], 61.0)


def test_a_refused_connection_is_retried_and_then_raised_as_not_billed(
    sleeps: Sleeps, zero_jitter: None
) -> None:
    cause = httpx.ConnectError("refused")
    error, calls = generate_against(cause, cause, cause)
    assert (type(error), calls, sleeps) == (APIConnectionError, 3, [0.5, 1.0])
    assert str(error) == f"POST {API_URL} failed: ConnectError: refused"
    assert error.possibly_billed is False
    assert error.__cause__ is cause


def test_a_read_timeout_is_raised_at_once_as_possibly_billed(sleeps: Sleeps) -> None:
    cause = httpx.ReadTimeout("slow")
    error, calls = generate_against(cause)
    assert (type(error), calls, sleeps) == (APITimeoutError, 1, [])
    assert str(error) == (
        f"POST {API_URL} timed out (ReadTimeout); the call may have been billed, so it was not "
        "retried"
    )
    assert error.possibly_billed is True
    assert error.__cause__ is cause


@pytest.mark.parametrize(
    ("cause", "kind", "text", "billed"),
    [
        (httpx.ConnectTimeout("t"), APITimeoutError, "timed out (ConnectTimeout)", False),
        (httpx.PoolTimeout("t"), APITimeoutError, "timed out (PoolTimeout)", False),
        (
            httpx.RemoteProtocolError("cut"),
            APIConnectionError,
            "failed: RemoteProtocolError: cut; the call may have been billed, so it was not "
            "retried",
            True,
        ),
        (
            httpx.WriteTimeout("w"),
            APITimeoutError,
            "timed out (WriteTimeout); the call may have been billed, so it was not retried",
            True,
        ),
    ],
)
def test_a_connection_error_names_the_request_without_its_query_and_whether_it_was_sent(
    cause: httpx.TransportError, kind: type, text: str, billed: bool
) -> None:
    request = httpx.Request("POST", "https://api.example.com/v3beta/x?token=secret")
    error = _connection_error(cause, request)
    assert type(error) is kind
    assert str(error) == f"POST https://api.example.com/v3beta/x {text}"
    assert error.possibly_billed is billed
    assert error.__cause__ is cause


def test_the_exchange_and_each_retry_are_logged(
    sleeps: Sleeps,
    zero_jitter: None,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = iter([10.0, 10.25, 20.0, 20.5])
    monkeypatch.setattr(_base_client, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    caplog.set_level(logging.DEBUG, logger="novita_flux")
    busy = httpx.Response(503, json=error_body(503, "SERVICE_NOT_AVAILABLE"))
    generate_against(busy, httpx.Response(200, json=success_body()))
    records = [r for r in caplog.records if r.name == "novita_flux"]
    assert [r.getMessage() for r in records] == [
        f"POST {API_URL} -> 503 in 250.0 ms (attempt 1)",
        "retrying in 0.50 s after: 503 SERVICE_NOT_AVAILABLE: went wrong",
        f"POST {API_URL} -> 200 in 500.0 ms (attempt 2)",
    ]
    assert [r.levelno for r in records] == [logging.DEBUG, logging.INFO, logging.DEBUG]


def test_the_flow_sends_within_the_exchange_deadline_sleeps_and_returns_the_generation(
    zero_jitter: None,
) -> None:
    flux = FluxSchnell(api_key=KEY, timeout=30)
    flow = flux._generate_flow(REQUEST, COST, NOT_GIVEN, 1, False)
    send = next(flow)
    assert type(send) is _Send
    assert send.seconds == 30.0
    assert (send.request.method, str(send.request.url)) == ("POST", API_URL)
    assert json.loads(send.request.content) == REQUEST
    assert send.request.extensions["timeout"]["read"] == 30.0
    busy = httpx.Response(503, json=error_body(503, "SERVICE_NOT_AVAILABLE"))
    assert flow.send(busy) == _Sleep(0.5)
    assert flow.send(None) == send  # the same request again
    with pytest.raises(StopIteration) as done:
        flow.send(httpx.Response(200, json=success_body()))
    generation = done.value.value
    assert (generation.task_id, generation.request, generation.cost) == ("task-1", REQUEST, COST)
    per_call = next(flux._generate_flow(REQUEST, COST, 2.5, 0, False))
    assert per_call.seconds == 2.5
    assert per_call.request.extensions["timeout"]["read"] == 2.5
    assert next(flux._generate_flow(REQUEST, COST, None, 0, False)).seconds is None


def test_an_injected_client_is_the_one_that_sends() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=success_body())

    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        generation = FluxSchnell(api_key=KEY, http_client=http).generate("x", seed=1)
    assert generation.task_id == "task-1"
    assert len(seen) == 1
    assert seen[0].headers["Authorization"] == f"Bearer {KEY}"


def test_a_wide_batch_gets_more_lanes_of_the_same_client_type() -> None:
    with FluxSchnell(api_key=KEY) as flux:
        lanes = flux.lanes(16)
        assert len(lanes) == 2
        assert lanes[0] is flux
        assert type(lanes[1]._http) is httpx.Client
        assert lanes[1]._http is not flux._http
        lanes[1].close()


def test_an_async_client_opens_its_own_async_pool_with_the_user_agent() -> None:
    flux = AsyncFluxSchnell(api_key=KEY)
    try:
        assert type(flux._http) is httpx.AsyncClient
        assert flux._http.headers["User-Agent"] == USER_AGENT
        (_, lane) = flux.lanes(9)
        assert type(lane._http) is httpx.AsyncClient
        assert lane._http is not flux._http
        asyncio.run(lane.close())
    finally:
        asyncio.run(flux.close())
