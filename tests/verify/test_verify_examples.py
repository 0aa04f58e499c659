"""Explicit examples of the verify judges (_judge, _checks), built in process from Exchange,
Attempt and Probe objects: every finding and account is compared whole, so that a small change
to a judge (a flipped comparison, a changed word, a dropped key) fails an example here. Written
to hold mutation testing of the two modules above 90% without a server or a network."""

from __future__ import annotations

import hashlib
import json
import struct
from datetime import timedelta
from decimal import Decimal
from typing import Any, get_args

import pytest

from novita_flux import APIStatusError, ResponseValidationError
from novita_flux._errors import BalanceValidationError
from novita_flux._imagebytes import HEAD_BYTES, TAIL_BYTES
from novita_flux._spec import BALANCE, GENERATE, Operation
from novita_flux.verify import _checks, _judge
from novita_flux.verify._exchange import Attempt, Exchange, ImageFetch
from novita_flux.verify._probes import Check, Probe, Send
from novita_flux.verify._report import Finding, ProbeResult

# --- builders -----------------------------------------------------------------------------------

PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
API = "https://api.novita.ai/v3beta/flux-1-schnell"


def png(width: int = 64, height: int = 64) -> bytes:
    header = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR" + struct.pack(">II", width, height)
    return header + b"\x08\x02\x00\x00\x00" + b"\x00" * 4 + PNG_END


def jpeg(width: int = 64, height: int = 64) -> bytes:
    frame = b"\xff\xd8\xff\xc0\x00\x11\x08" + struct.pack(">HH", height, width)
    return frame + b"\x03" + b"\x00" * 9 + b"\xff\xd9"


def webp(width: int = 64, height: int = 64) -> bytes:
    chunk = b"VP8X" + struct.pack("<I", 10) + b"\x00" * 4
    chunk += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def exchange(
    status: int = 200,
    body: Any = b"",
    media: str | None = "application/json",
    phrase: str = "OK",
    headers: tuple[tuple[str, str], ...] = (),
) -> Exchange:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = ((("content-type", media),) if media else ()) + headers
    return Exchange("POST", API, (), b"", "key", status, phrase, sent, raw, 0.0)


def served(data: bytes, media: str | None = "image/png", status: int = 200) -> Exchange:
    return exchange(status, data, media)


def fetch(index: int = 0, data: bytes | None = None, media: str = "image/png") -> ImageFetch:
    hop = served(png() if data is None else data, media)
    return ImageFetch(index, f"https://img/{index}", (hop,))


def request(**fields: Any) -> dict[str, Any]:
    body = {"prompt": "p", "seed": 1, "steps": 1, "width": 64, "height": 64, "image_num": 1}
    body["response_image_type"] = "png"
    body.update(fields)
    return {key: value for key, value in body.items() if value is not None}


def image(index: int = 0, image_type: Any = "png", ttl: Any = 3600) -> dict[str, Any]:
    return {"image_url": f"https://img/{index}", "image_url_ttl": ttl, "image_type": image_type}


def answer(*images: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"images": list(images), "task": {"task_id": "t"}, **extra}


def envelope(code: int, reason: str, message: str = "no") -> dict[str, Any]:
    return {"code": code, "reason": reason, "message": message, "metadata": {}}


def generation(
    body: Any = None,
    payload: Any = None,
    fetches: tuple[ImageFetch, ...] | None = None,
    cost: str = "0.0001",
    worst: str = "0",
    status: int = 200,
) -> Attempt:
    send = Send(request() if body is None else body, cost=Decimal(cost), worst_cost=Decimal(worst))
    got = exchange(status, answer(image()) if payload is None else payload)
    return Attempt(send, got, images=(fetch(),) if fetches is None else fetches)


def refusal(status: int, payload: Any, media: str | None = "application/json") -> Attempt:
    return Attempt(Send(request(seed=-1)), exchange(status, payload, media, "Bad Request"))


def probe(check: str, *reasons: str, title: str = "the title", sends: int = 1) -> Probe:
    sent = tuple(Send(request()) for _ in range(sends))
    return Probe("g.p", "g", title, check, sent, frozenset(reasons))  # type: ignore[arg-type]


def deviates(where: str, spec: str, got: str) -> Finding:
    return Finding("deviates", where, spec, got)


def tolerated(where: str, spec: str, got: str) -> Finding:
    return Finding("tolerated", where, spec, got)


def answered(where: str, got: str) -> Finding:
    return Finding("answered", where, "", got)


# --- answer_line and shortened ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "phrase", "body", "line"),
    [
        (400, "Bad Request", envelope(400, "ILLEGAL_PROMPT", "  no  "), "400 ILLEGAL_PROMPT: 'no'"),
        (400, "Bad Request", {"reason": "ILLEGAL_PROMPT"}, "400 ILLEGAL_PROMPT"),
        (400, "Bad Request", {"reason": "X", "message": 5}, "400 X"),
        (
            400,
            "Bad Request",
            {"reason": 5, "message": "m"},
            '400 Bad Request: \'{"reason": 5, "message": "m"}\'',
        ),
        (400, "Bad Request", ["reason"], "400 Bad Request: '[\"reason\"]'"),
        (502, "Bad Gateway", b"", "502 Bad Gateway"),
        (502, "Bad Gateway", b"x" * 70, "502 Bad Gateway: '" + "x" * 60 + "'"),
        (502, "Bad Gateway", b"\xff<", "502 Bad Gateway: '\ufffd<'"),
    ],
)
def test_answer_line_gives_reason_and_message_or_status_and_body_head(
    status: int, phrase: str, body: Any, line: str
) -> None:
    assert _judge.answer_line(exchange(status, body, phrase=phrase)) == line


def test_answer_line_shortens_a_long_message_to_eighty_characters() -> None:
    got = exchange(400, envelope(400, "X", "m" * 81))
    assert _judge.answer_line(got) == "400 X: '" + "m" * 77 + "...'"


@pytest.mark.parametrize(
    ("text", "limit", "short"),
    [
        ("a" * 80, 80, "a" * 80),
        ("a" * 79, 80, "a" * 79),
        ("a" * 81, 80, "a" * 77 + "..."),
        ("abcde", 5, "abcde"),
        ("abcdef", 5, "ab..."),
        ("", 5, ""),
    ],
)
def test_shortened_keeps_text_up_to_the_limit_and_cuts_longer_text_with_dots(
    text: str, limit: int, short: str
) -> None:
    assert _judge.shortened(text, limit) == short


def test_shortened_defaults_to_a_limit_of_eighty() -> None:
    assert _judge.shortened("b" * 80) == "b" * 80
    assert _judge.shortened("b" * 81) == "b" * 77 + "..."


# --- judge_generation ---------------------------------------------------------------------------


def test_a_conforming_generation_has_no_findings_and_keeps_its_image() -> None:
    judged = _judge.judge_generation(generation(), asked_type="png")
    assert judged == _judge.Judged([], "200: 1 png image(s) of 64x64", {0: ("png", png())})


@pytest.mark.parametrize("status", [201, 199, 400, 500])
def test_a_generation_answered_with_another_status_than_200_deviates_at_status(
    status: int,
) -> None:
    attempt = generation(payload=envelope(status, "TASK_FAILED", "it broke"), status=status)
    line = f"{status} TASK_FAILED: 'it broke'"
    judged = _judge.judge_generation(attempt, asked_type="png")
    assert judged == _judge.Judged([deviates("status", "200 with the images", line)], line)


def test_a_generation_whose_body_is_not_json_deviates_at_the_root() -> None:
    attempt = Attempt(Send(request()), exchange(200, b"<html>" + b"y" * 80, "text/html"))
    judged = _judge.judge_generation(attempt, asked_type="png")
    head = "'<html>" + "y" * 50 + "..." + " (60 characters)"
    assert judged.findings == [
        deviates("header Content-Type", "application/json", "text/html"),
        deviates("$", "a JSON body", head),
    ]
    assert judged.summary == "200, not JSON"
    assert judged.images == {}


def test_a_generation_without_content_type_deviates_with_none() -> None:
    attempt = Attempt(Send(request()), exchange(200, b"{", None))
    judged = _judge.judge_generation(attempt, asked_type="png")
    assert judged.findings == [
        deviates("header Content-Type", "application/json", "None"),
        deviates("$", "a JSON body", "'{'"),
    ]


def test_tolerated_forms_of_a_generation_are_listed_and_the_client_still_reads_it() -> None:
    payload = answer(
        image(
            ttl="3600",
            image_type="PNG",
        )
        | {"x": 1},
        y=2,
    )
    fetched = (fetch(media="application/octet-stream"),)
    judged = _judge.judge_generation(generation(payload=payload, fetches=fetched), asked_type="png")
    named = "the fields it names, and allows others (additionalProperties)"
    assert judged.findings == [
        tolerated(
            "$.images[0].image_url_ttl",
            "an integer >= 0",
            "'3600', a string matching '^[0-9]+$', which it allows",
        ),
        tolerated("$.images[0].image_type", "'png'", "'PNG', which it reads as 'png'"),
        tolerated("$.images[0].x", named, "a field it does not name: 1"),
        tolerated("$.y", named, "a field it does not name: 2"),
        # The type the spec prefers, filled in (it once named the raw template).
        tolerated(
            "image 0: Content-Type",
            "image/png",
            "application/octet-stream, which it allows",
        ),
    ]
    assert judged.summary == "200: 1 png image(s) of 64x64"


def test_a_negative_ttl_and_a_missing_task_deviate() -> None:
    payload = {"images": [image(ttl=-1)]}
    judged = _judge.judge_generation(generation(payload=payload), asked_type="png")
    kinds = [(finding.kind, finding.where) for finding in judged.findings]
    assert kinds == [("deviates", "$.task"), ("deviates", "$.images[0].image_url_ttl")]


TYPE_RULE = "a string matching '^([Pp][Nn][Gg]|[Ww][Ee][Bb][Pp]|[Jj][Pp][Ee]?[Gg])$'"


@pytest.mark.parametrize("asked_type", [None, "png"])
def test_an_image_type_with_a_trailing_newline_deviates_as_json_schema_reads_the_pattern(
    asked_type: str | None,
) -> None:
    # ECMA-262's `$` is the very end: "png\n" is no spelling of png (issue 20), asked for or not.
    attempt = generation(payload=answer(image(0, "png\n")), fetches=())
    judged = _judge.judge_generation(attempt, asked_type=asked_type)
    assert judged.findings[0] == deviates("$.images[0].image_type", TYPE_RULE, "'png\\n'")
    assert [finding.kind for finding in judged.findings] == ["deviates"] * len(judged.findings)


@pytest.mark.parametrize(("asked", "count"), [(2, 1), (1, 0), (1, 2), (8, 9)])
def test_a_generation_with_another_number_of_images_than_image_num_deviates(
    asked: int, count: int
) -> None:
    images = [image(index) for index in range(count)]
    attempt = generation(body=request(image_num=asked), payload=answer(*images), fetches=())
    judged = _judge.judge_generation(attempt, asked_type="png")
    expected = [deviates("$.images", f"{asked} image(s) (image_num)", str(count))]
    if not 1 <= count <= 8:  # past the bounds the spec states, too
        expected.insert(0, deviates("$.images", "an array of 1 to 8 items", f"{count} item(s)"))
    assert judged.findings == expected
    assert judged.summary == f"200: {count} image(s)"


@pytest.mark.parametrize("image_num", ["2", True, None, 2.0])
def test_an_image_num_that_is_not_an_int_is_not_counted(image_num: Any) -> None:
    attempt = generation(body=request(image_num=image_num), fetches=())
    judged = _judge.judge_generation(attempt, asked_type=None)
    assert [finding for finding in judged.findings if finding.where == "$.images"] == []


def test_an_image_type_other_than_the_one_asked_for_deviates_at_its_index() -> None:
    payload = answer(image(0, "png"), image(1, "jpeg"), image(2, "JPG"))
    attempt = generation(body=request(image_num=3), payload=payload, fetches=())
    judged = _judge.judge_generation(attempt, asked_type="png")
    assert judged.findings == [
        tolerated("$.images[2].image_type", "'jpeg'", "'JPG', which it reads as 'jpeg'"),
        deviates("$.images[1].image_type", "'png' (the type asked for)", "'jpeg'"),
        deviates("$.images[2].image_type", "'png' (the type asked for)", "'JPG'"),
    ]
    assert judged.summary == "200: 3 image(s)"


def test_the_image_type_is_not_compared_when_no_type_was_asked_for() -> None:
    attempt = generation(payload=answer(image(0, "webp")), fetches=())
    assert _judge.judge_generation(attempt, asked_type=None).findings == []


def test_an_image_type_that_is_not_a_string_or_an_image_that_is_not_an_object_is_not_compared() -> (
    None
):
    payload = answer(image(0, 5), "not an image")
    attempt = generation(body=request(image_num=2), payload=payload, fetches=())
    judged = _judge.judge_generation(attempt, asked_type="png")
    assert [finding.where for finding in judged.findings] == [
        "$.images[0].image_type",
        "$.images[1]",
    ]
    assert all("type asked" not in finding.spec for finding in judged.findings)


@pytest.mark.parametrize("images", ["none", {"a": 1}])
def test_images_that_are_not_a_list_count_as_none(images: Any) -> None:
    attempt = generation(body=request(image_num=None), payload=answer() | {"images": images})
    judged = _judge.judge_generation(attempt, asked_type="png")
    assert judged.summary == "200: 0 png image(s) of 64x64"
    assert judged.findings[0].where == "$.images"


def test_a_payload_that_is_not_an_object_has_no_images() -> None:
    attempt = generation(payload=[1], fetches=())
    judged = _judge.judge_generation(attempt, asked_type="png")
    assert judged.summary == "200: 0 image(s)"
    assert judged.findings == [
        deviates("$", "an object", "[1]"),
        deviates("$.images", "1 image(s) (image_num)", "0"),
    ]


def test_a_body_sent_that_is_not_an_object_is_read_as_empty() -> None:
    attempt = generation(body=["x"], fetches=())
    judged = _judge.judge_generation(attempt, asked_type="png")
    assert judged == _judge.Judged([], "200: 1 image(s)", {})


def test_download_false_leaves_the_links_unfetched() -> None:
    failing = (ImageFetch(0, "https://img/0", failure="boom"),)
    attempt = generation(fetches=failing)
    judged = _judge.judge_generation(attempt, asked_type="png", download=False)
    assert judged == _judge.Judged([], "200: 1 image(s)", {})


def test_download_defaults_to_true() -> None:
    attempt = generation(fetches=(ImageFetch(0, "https://img/0", failure="boom"),))
    judged = _judge.judge_generation(attempt, asked_type="png")
    assert judged.findings == [deviates("image 0: download", "the image", "boom")]
    assert judged.images == {0: (None, b"")}
    assert judged.summary == "200: 1 unreadable image(s) of 64x64"


def test_every_image_is_judged_and_the_summary_lists_their_sorted_types() -> None:
    payload = answer(image(0), image(1), image(2))
    fetched = (
        fetch(0, jpeg(), "image/jpeg"),
        fetch(1, png()),
        ImageFetch(2, "https://img/2", failure="gone"),
    )
    attempt = generation(body=request(image_num=3), payload=payload, fetches=fetched)
    judged = _judge.judge_generation(attempt, asked_type=None)
    assert judged.findings == [deviates("image 2: download", "the image", "gone")]
    assert judged.summary == "200: 3 jpeg/png/unreadable image(s) of 64x64"
    assert judged.images == {0: ("jpeg", jpeg()), 1: ("png", png()), 2: (None, b"")}


def test_the_size_asked_for_is_read_from_width_and_height() -> None:
    attempt = generation(body=request(width=128, height=64), fetches=(fetch(0, png(128, 64)),))
    judged = _judge.judge_generation(attempt, asked_type="png")
    assert judged.findings == []
    assert judged.summary == "200: 1 png image(s) of 128x64"


# --- _client_reads ------------------------------------------------------------------------------


def test_the_client_reads_the_answer_with_the_request_defaults_and_the_cost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[Any, ...]] = []
    monkeypatch.setattr(_judge, "parse_generation", lambda *args: seen.append(args))
    body = {"prompt": "p", "width": 64}
    got = exchange(200, answer(image()))
    assert _judge._client_reads(got, body, Decimal("0.5")) == []
    ((response, read, cost, _sent),) = seen
    assert response.status_code == 200
    assert response.content == got.body
    assert read == {"seed": 0, "response_image_type": "png", "prompt": "p", "width": 64}
    assert cost == Decimal("0.5")


def test_the_request_sent_overrides_the_defaults_the_client_reads_with(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[Any, ...]] = []
    monkeypatch.setattr(_judge, "parse_generation", lambda *args: seen.append(args))
    body = {"seed": 7, "response_image_type": "webp"}
    _judge._client_reads(exchange(200, answer()), body, Decimal(0))
    assert seen[0][1] == body


def test_an_answer_the_client_cannot_read_deviates_at_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(response: Any, *args: Any) -> None:
        raise ResponseValidationError(response, "a client bug")

    monkeypatch.setattr(_judge, "parse_generation", refuse)
    judged = _judge.judge_generation(generation(), asked_type="png")
    assert judged.findings == [deviates("client", "a body the client reads", "a client bug")]


def test_the_client_is_not_asked_when_the_judge_already_found_a_deviation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(response: Any, *args: Any) -> None:
        raise ResponseValidationError(response, "a client bug")

    monkeypatch.setattr(_judge, "parse_generation", refuse)
    attempt = generation(body=request(image_num=2), fetches=())
    judged = _judge.judge_generation(attempt, asked_type="png")
    assert judged.findings == [deviates("$.images", "2 image(s) (image_num)", "1")]


def test_the_real_client_reads_a_conforming_answer() -> None:
    assert _judge._client_reads(exchange(200, answer(image())), request(), Decimal(0)) == []


# --- _generation_line ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("images", "judged", "size", "line"),
    [
        ([], {}, (64, 64), "200: 0 image(s)"),
        ([1, 2], {}, (64, 64), "200: 2 image(s)"),
        ([1], {0: ("png", b"")}, (64, 32), "200: 1 png image(s) of 64x32"),
        (
            [1, 2],
            {0: (None, b""), 1: ("webp", b"")},
            (8, 9),
            "200: 2 unreadable/webp image(s) of 8x9",
        ),
        ([1, 2], {0: ("png", b""), 1: ("png", b"")}, (1, 2), "200: 2 png image(s) of 1x2"),
        ([1, 2], {0: ("webp", b""), 1: ("jpeg", b"")}, (1, 2), "200: 2 jpeg/webp image(s) of 1x2"),
    ],
)
def test_generation_line_counts_images_and_names_the_types_downloaded(
    images: list[Any], judged: dict[int, Any], size: tuple[Any, Any], line: str
) -> None:
    assert _judge._generation_line(images, judged, size) == line


# --- judge_image and _image_media_type ----------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "data", "media"),
    [("png", png(), "image/png"), ("jpeg", jpeg(), "image/jpeg"), ("webp", webp(), "image/webp")],
)
def test_a_whole_image_of_the_type_and_size_asked_for_conforms(
    kind: str, data: bytes, media: str
) -> None:
    assert _judge.judge_image(fetch(3, data, media), kind, (64, 64)) == ([], kind, data)


@pytest.mark.parametrize(
    ("failure", "hops", "got"),
    [("connect failed", (), "connect failed"), (None, (), ""), ("late", (served(png()),), "late")],
)
def test_a_download_that_failed_deviates(
    failure: str | None, hops: tuple[Exchange, ...], got: str
) -> None:
    failed = ImageFetch(2, "https://img/2", hops, failure)
    result = _judge.judge_image(failed, "png", (64, 64))
    assert result == ([deviates("image 2: download", "the image", got)], None, b"")


def test_a_download_answered_with_another_status_deviates_with_the_body_head() -> None:
    hops = (served(b"", None, 302), served(b"n" * 90, "text/plain", 404))
    result = _judge.judge_image(ImageFetch(1, "https://img/1", hops), "png", (64, 64))
    got = "404 '" + "n" * 80 + "'"
    assert result == ([deviates("image 1: download", "200 with the image", got)], None, b"")


def test_the_last_hop_of_a_redirected_download_is_judged() -> None:
    hops = (served(b"moved", "text/plain", 302), served(png()))
    assert _judge.judge_image(ImageFetch(0, "u", hops), "png", (64, 64)) == ([], "png", png())


@pytest.mark.parametrize(
    ("asked", "media", "allowed"),
    [
        ("png", "image/png", "image/png or application/octet-stream"),
        (None, "image/*", "image/* or application/octet-stream"),
    ],
)
def test_bytes_of_no_known_type_deviate_at_type(
    asked: str | None, media: str, allowed: str
) -> None:
    data = b"GIF89a\x01\x02\x03\x04"
    result = _judge.judge_image(fetch(0, data, media), asked, (64, 64))
    found = deviates(
        "image 0: type", "a PNG, JPEG or WebP image", "bytes starting 4749463839610102"
    )
    assert result == ([found], None, data)
    other = _judge.judge_image(fetch(0, data, "text/plain"), asked, (64, 64))
    assert other[0][0] == deviates("image 0: Content-Type", allowed, "text/plain")


def test_an_image_of_another_type_than_asked_deviates_at_type_and_content_type() -> None:
    result = _judge.judge_image(fetch(0, jpeg(), "image/jpeg"), "png", (64, 64))
    assert result == (
        [
            deviates(
                "image 0: Content-Type", "image/png or application/octet-stream", "image/jpeg"
            ),
            deviates("image 0: type", "png (the type asked for)", "jpeg"),
        ],
        "jpeg",
        jpeg(),
    )


def test_without_an_asked_type_the_media_type_is_compared_with_the_bytes_type() -> None:
    result = _judge.judge_image(fetch(0, jpeg(), "image/jpeg"), None, (64, 64))
    assert result == ([], "jpeg", jpeg())


@pytest.mark.parametrize(
    ("kind", "data", "why"),
    [
        ("png", png()[:-1], "it does not end with PNG's IEND chunk"),
        ("jpeg", jpeg()[:-1], "it does not end with JPEG's end-of-image marker"),
        ("webp", webp()[:-2], "the RIFF header promises 30 bytes but only 28 arrived"),
    ],
)
def test_a_cut_image_deviates_at_whole(kind: str, data: bytes, why: str) -> None:
    findings, got, kept = _judge.judge_image(fetch(0, data, f"image/{kind}"), kind, (64, 64))
    assert findings == [deviates("image 0: whole", f"a whole {kind} file", why)]
    assert (got, kept) == (kind, data)


def test_an_image_whose_size_cannot_be_read_deviates_at_size() -> None:
    data = b"\x89PNG\r\n\x1a\n" + b"\x00" * 20 + PNG_END
    findings, kind, kept = _judge.judge_image(fetch(0, data), "png", (64, 64))
    assert findings == [deviates("image 0: size", "a readable size", "unreadable")]
    assert (kind, kept) == ("png", data)


@pytest.mark.parametrize(("width", "height"), [(128, 64), (64, 128), (65, 64)])
def test_an_image_of_another_size_than_asked_deviates_at_size(width: int, height: int) -> None:
    findings, kind, _ = _judge.judge_image(fetch(4, png(width, height)), "png", (64, 64))
    expected = "64x64 (width x height asked for)"
    assert findings == [deviates("image 4: size", expected, f"{width}x{height}")]
    assert kind == "png"


@pytest.mark.parametrize(
    ("media", "image_type", "findings"),
    [
        ("image/png", "png", []),
        ("image/*", None, []),
        (
            "application/octet-stream",
            "png",
            [
                tolerated(
                    "image 9: Content-Type",
                    "image/png",
                    "application/octet-stream, which it allows",
                )
            ],
        ),
        (
            "image/jpeg",
            "png",
            [
                deviates(
                    "image 9: Content-Type",
                    "image/png or application/octet-stream",
                    "image/jpeg",
                )
            ],
        ),
        (
            None,
            "webp",
            [deviates("image 9: Content-Type", "image/webp or application/octet-stream", "None")],
        ),
    ],
)
def test_image_media_type_prefers_the_image_type_and_tolerates_octet_stream(
    media: str | None, image_type: str | None, findings: list[Finding]
) -> None:
    assert _judge._image_media_type("image 9", media, image_type) == findings


# --- judge_read: an operation that takes no body (the balance) ----------------------------------

BALANCE_FIELDS = ("availableBalance", "cashBalance", "creditLimit", "outstandingInvoices")


def balance(**fields: Any) -> dict[str, Any]:
    """A balance with every required amount as a string of units, `fields` added or replaced."""
    return dict(zip(BALANCE_FIELDS, ("1000", "800", "200", "0"), strict=True)) | fields


def read(status: int = 200, payload: Any = None, media: str | None = "application/json") -> Attempt:
    """An answer to the balance request (GET, no body): a balance unless `payload` is given."""
    phrase = "OK" if status == 200 else "Forbidden"
    got = exchange(status, balance() if payload is None else payload, media, phrase)
    return Attempt(Send(None, operation=BALANCE), got)


def test_a_balance_as_documented_conforms_and_its_account_names_its_fields() -> None:
    assert _judge.judge_read(read()) == _judge.Judged([], "200: " + ", ".join(BALANCE_FIELDS))


def test_a_read_whose_body_is_not_an_object_names_its_json_type() -> None:
    judged = _judge.judge_read(read(payload=[1, 2]))
    assert judged == _judge.Judged([deviates("$", "an object", "[1, 2]")], "200: list")


def test_a_read_whose_body_is_not_json_deviates_at_the_root_with_its_first_sixty_bytes() -> None:
    # The first byte is not UTF-8: the head is decoded with replacement characters.
    judged = _judge.judge_read(read(payload=b"\xff<html>" + b"y" * 80, media="text/html"))
    head = "'\ufffd<html>" + "y" * 49 + "..." + " (60 characters)"
    assert judged == _judge.Judged(
        [
            deviates("header Content-Type", "application/json", "text/html"),
            deviates("$", "a JSON body", head),
        ],
        "200, not JSON",
    )


def test_a_read_keeps_its_content_type_finding_beside_a_conforming_body() -> None:
    judged = _judge.judge_read(read(media="text/plain"))
    assert judged.findings == [deviates("header Content-Type", "application/json", "text/plain")]


def test_a_read_refused_is_judged_as_a_refusal_expecting_no_reason_and_told_by_its_line() -> None:
    # A key without billing rights is an answer, not a deviation: any known reason will do,
    # but the envelope is still held to the spec.
    judged = _judge.judge_read(read(403, envelope(401, "API_NOT_ALLOWED")))
    assert judged == _judge.Judged(
        [deviates("$.code", "403 (the HTTP status, repeated)", "401")],
        "403 API_NOT_ALLOWED: 'no'",
    )


def cannot_read(seen: list[Any]) -> Any:
    def reader(response: Any) -> None:
        seen.append(response)
        raise BalanceValidationError(response, "a client bug")

    return reader


def test_a_balance_the_client_cannot_read_deviates_at_client_after_the_tolerated_forms(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A tolerated form does not keep the client from reading the answer; its error is the
    # finding, as the client would say it.
    seen: list[Any] = []
    monkeypatch.setitem(_judge.READERS, BALANCE, cannot_read(seen))
    judged = _judge.judge_read(read(payload=balance(availableBalance=1000)))
    said = "the API's 200 answer to the balance request breaks the contract: a client bug"
    assert judged.findings == [
        tolerated(
            "$.availableBalance",
            "a string matching '^-?[0-9]+$'",
            "1000, an integer, which it allows",
        ),
        deviates("client", "a body the client reads", said),
    ]
    assert [response.content for response in seen] == [
        json.dumps(balance(availableBalance=1000)).encode()
    ]


def test_the_client_is_not_asked_to_read_a_balance_the_judge_found_deviating(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[Any] = []
    monkeypatch.setitem(_judge.READERS, BALANCE, cannot_read(seen))
    judged = _judge.judge_read(read(payload={"availableBalance": "1", "cashBalance": "1"}))
    required = "a required field: a string matching '^-?[0-9]+$' or an integer"
    assert judged.findings == [
        deviates("$.creditLimit", required, "missing"),
        deviates("$.outstandingInvoices", required, "missing"),
    ]
    assert seen == []


def test_the_real_client_reads_a_conforming_balance_with_its_tolerated_forms() -> None:
    # The judge and the client agree: what the judge tolerates, parse_balance reads.
    judged = _judge.judge_read(
        read(payload=balance(availableBalance=1000, pendingCharges="0", x=1))
    )
    assert [finding.kind for finding in judged.findings] == ["tolerated", "tolerated"]


# --- judge_refusal and its parts ----------------------------------------------------------------


def test_a_refusal_as_documented_conforms() -> None:
    attempt = refusal(400, envelope(400, "INVALID_REQUEST_BODY", "seed: too small"))
    judged = _judge.judge_refusal(attempt, frozenset({"INVALID_REQUEST_BODY"}))
    assert judged == _judge.Judged([], "400 INVALID_REQUEST_BODY: 'seed: too small'")


@pytest.mark.parametrize("status", [200, 204, 299])
def test_an_accepted_request_deviates_at_status(status: int) -> None:
    attempt = refusal(status, answer(image()))
    judged = _judge.judge_refusal(attempt, frozenset({"INVALID_REQUEST_BODY"}))
    got = f"{status}: the request was accepted"
    assert judged == _judge.Judged([deviates("status", "400 INVALID_REQUEST_BODY", got)], got)


def test_an_accepted_request_with_no_reason_expected_deviates_against_an_error_status() -> None:
    judged = _judge.judge_refusal(refusal(200, {}), None)
    got = "200: the request was accepted"
    assert judged.findings == [deviates("status", "an error status", got)]


def test_a_300_is_not_an_accepted_request() -> None:
    judged = _judge.judge_refusal(refusal(300, b"moved", "text/plain"), None)
    assert judged.summary == "300, no error envelope"


def test_a_refusal_without_a_json_envelope_deviates_at_the_root() -> None:
    attempt = refusal(502, b"<html>" + b"z" * 80, "text/html")
    judged = _judge.judge_refusal(attempt, frozenset({"INVALID_REQUEST_BODY"}))
    head = "'<html>" + "z" * 50 + "..." + " (60 characters)"
    assert judged == _judge.Judged(
        [
            deviates("header Content-Type", "application/json", "text/html"),
            deviates("$", "the error envelope (JSON)", head),
        ],
        "502, no error envelope",
    )


def test_a_json_refusal_that_is_not_an_object_has_no_envelope() -> None:
    judged = _judge.judge_refusal(refusal(400, ["x"]), None)
    assert judged == _judge.Judged(
        [deviates("$", "the error envelope (JSON)", "'[\"x\"]'")], "400, no error envelope"
    )


def test_a_code_other_than_the_status_deviates() -> None:
    attempt = refusal(400, envelope(401, "INVALID_REQUEST_BODY"))
    judged = _judge.judge_refusal(attempt, frozenset({"INVALID_REQUEST_BODY"}))
    assert judged.findings == [
        deviates("$.code", "400 (the HTTP status, repeated)", "401"),
    ]


def test_an_envelope_without_its_fields_deviates_and_is_not_mapped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_judge, "status_error", lambda response: APIStatusError(response, {}, None))
    judged = _judge.judge_refusal(refusal(400, {"code": "400"}), frozenset({"ILLEGAL_PROMPT"}))
    assert [(finding.kind, finding.where) for finding in judged.findings] == [
        ("deviates", "$.reason"),
        ("deviates", "$.message"),
        ("deviates", "$.code"),
    ]
    assert judged.summary == '400 Bad Request: \'{"code": "400"}\''


def test_a_refusal_with_a_known_reason_of_the_same_kind_is_tolerated() -> None:
    attempt = refusal(400, envelope(400, "ILLEGAL_PROMPT"))
    judged = _judge.judge_refusal(attempt, frozenset({"INVALID_REQUEST_BODY"}))
    got = "'ILLEGAL_PROMPT', a reason of the same kind (bad_request) it also knows"
    assert judged.findings == [tolerated("$.reason", "INVALID_REQUEST_BODY", got)]


def test_a_refusal_under_a_status_the_spec_has_also_seen_is_tolerated() -> None:
    attempt = refusal(403, envelope(403, "BILLING_BALANCE_NOT_ENOUGH"))
    judged = _judge.judge_refusal(attempt, frozenset({"BILLING_BALANCE_NOT_ENOUGH"}))
    got = "403, under which it has also seen BILLING_BALANCE_NOT_ENOUGH"
    spec = "400 for BILLING_BALANCE_NOT_ENOUGH"
    assert judged.findings == [tolerated("status", spec, got)]
    assert judged.summary == "403 BILLING_BALANCE_NOT_ENOUGH: 'no'"


def test_a_refusal_judged_without_reasons_is_not_mapped_to_an_exception(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_judge, "status_error", lambda response: APIStatusError(response, {}, None))
    attempt = refusal(400, envelope(400, "ILLEGAL_PROMPT"))
    assert _judge.judge_refusal(attempt, None).findings == []
    assert _judge.judge_refusal(attempt, frozenset()).findings == []


def test_a_refusal_the_client_maps_to_another_exception_deviates_at_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_judge, "status_error", lambda response: APIStatusError(response, {}, None))
    attempt = refusal(401, envelope(401, "FAILED_TO_AUTH"))
    judged = _judge.judge_refusal(attempt, frozenset({"FAILED_TO_AUTH"}))
    spec = "the client to raise AuthenticationError"
    assert judged.findings == [deviates("client", spec, "APIStatusError")]


def test_a_tolerated_refusal_is_still_mapped_by_the_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_judge, "status_error", lambda response: APIStatusError(response, {}, None))
    attempt = refusal(403, envelope(403, "BILLING_BALANCE_NOT_ENOUGH"))
    judged = _judge.judge_refusal(attempt, frozenset({"BILLING_BALANCE_NOT_ENOUGH"}))
    assert judged.findings[-1] == deviates(
        "client", "the client to raise BadRequestError", "APIStatusError"
    )


@pytest.mark.parametrize(
    ("reasons", "text"),
    [
        (None, "an error status"),
        (frozenset(), "an error status"),
        (frozenset({"FAILED_TO_AUTH"}), "401 FAILED_TO_AUTH"),
        (frozenset({"BILLING_BALANCE_NOT_ENOUGH"}), "400/403 BILLING_BALANCE_NOT_ENOUGH"),
        (
            frozenset({"INVALID_API_KEY", "FAILED_TO_AUTH", "MISSING_API_KEY"}),
            "401 FAILED_TO_AUTH or 403 INVALID_API_KEY or 400 MISSING_API_KEY",
        ),
    ],
)
def test_expected_statuses_name_each_reason_under_its_statuses(
    reasons: frozenset[str] | None, text: str
) -> None:
    assert _judge._expected_statuses(reasons) == text


@pytest.mark.parametrize(
    ("status", "reason", "reasons", "findings"),
    [
        (400, "ILLEGAL_PROMPT", None, []),
        (400, "ILLEGAL_PROMPT", frozenset(), []),
        (400, "ILLEGAL_PROMPT", frozenset({"ILLEGAL_PROMPT"}), []),
        (
            400,
            "NOPE",
            None,
            [deviates("$.reason", "a reason it knows (x-known-reasons)", "'NOPE'")],
        ),
        (
            400,
            "NOPE",
            frozenset({"ILLEGAL_PROMPT", "INVALID_IMAGE_SIZE"}),
            [
                deviates(
                    "$.reason",
                    "a reason it knows (x-known-reasons); "
                    "here ILLEGAL_PROMPT or INVALID_IMAGE_SIZE",
                    "'NOPE'",
                )
            ],
        ),
        (
            400,
            "ILLEGAL_PROMPT",
            frozenset({"INVALID_IMAGE_SIZE", "MISSING_API_KEY"}),
            [
                tolerated(
                    "$.reason",
                    "INVALID_IMAGE_SIZE or MISSING_API_KEY",
                    "'ILLEGAL_PROMPT', a reason of the same kind (bad_request) it also knows",
                )
            ],
        ),
        (
            400,
            "MISSING_API_KEY",
            frozenset({"INVALID_REQUEST_BODY", "API_NOT_FOUND"}),
            [
                deviates(
                    "$.reason",
                    "API_NOT_FOUND or INVALID_REQUEST_BODY",
                    "'MISSING_API_KEY' (authentication)",
                )
            ],
        ),
        (
            403,
            "BILLING_BALANCE_NOT_ENOUGH",
            None,
            [
                tolerated(
                    "status",
                    "400 for BILLING_BALANCE_NOT_ENOUGH",
                    "403, under which it has also seen BILLING_BALANCE_NOT_ENOUGH",
                )
            ],
        ),
        (
            401,
            "BILLING_BALANCE_NOT_ENOUGH",
            None,
            [deviates("status", "400 for BILLING_BALANCE_NOT_ENOUGH", "401")],
        ),
        (404, "ILLEGAL_PROMPT", None, [deviates("status", "400 for ILLEGAL_PROMPT", "404")]),
        (
            403,
            "FAILED_TO_AUTH",
            frozenset({"API_NOT_ALLOWED"}),
            [
                deviates("$.reason", "API_NOT_ALLOWED", "'FAILED_TO_AUTH' (authentication)"),
                deviates("status", "401 for FAILED_TO_AUTH", "403"),
            ],
        ),
        (
            403,
            "BILLING_BALANCE_NOT_ENOUGH",
            frozenset({"ILLEGAL_PROMPT"}),
            [
                tolerated(
                    "$.reason",
                    "ILLEGAL_PROMPT",
                    "'BILLING_BALANCE_NOT_ENOUGH', a reason of the same kind (bad_request) "
                    "it also knows",
                ),
                tolerated(
                    "status",
                    "400 for BILLING_BALANCE_NOT_ENOUGH",
                    "403, under which it has also seen BILLING_BALANCE_NOT_ENOUGH",
                ),
            ],
        ),
    ],
)
def test_reason_is_judged_against_the_known_reasons_and_their_statuses(
    status: int, reason: str, reasons: frozenset[str] | None, findings: list[Finding]
) -> None:
    assert _judge._reason(status, reason, reasons) == findings


@pytest.mark.parametrize(
    ("status", "reason", "reasons"),
    [
        (400, "MISSING_API_KEY", {"MISSING_API_KEY"}),
        (401, "FAILED_TO_AUTH", {"FAILED_TO_AUTH", "INVALID_API_KEY"}),
        (429, "RATE_LIMIT_EXCEEDED", {"RATE_LIMIT_EXCEEDED"}),
        (403, "API_NOT_ALLOWED", {"API_NOT_ALLOWED"}),
    ],
)
def test_client_maps_each_known_reason_to_the_exception_of_its_kind(
    status: int, reason: str, reasons: set[str]
) -> None:
    got = exchange(status, envelope(status, reason))
    assert _judge._client_maps(got, frozenset(reasons)) == []


def test_client_maps_names_every_wanted_exception_sorted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_judge, "status_error", lambda response: APIStatusError(response, {}, None))
    got = exchange(403, envelope(403, "API_NOT_ALLOWED"))
    wanted = frozenset({"API_NOT_ALLOWED", "FAILED_TO_AUTH", "ILLEGAL_PROMPT"})
    spec = "the client to raise AuthenticationError or BadRequestError or PermissionDeniedError"
    assert _judge._client_maps(got, wanted) == [deviates("client", spec, "APIStatusError")]


def test_client_maps_a_reason_the_client_maps_elsewhere_deviates() -> None:
    got = exchange(400, envelope(400, "MISSING_API_KEY"))
    wanted = frozenset({"ILLEGAL_PROMPT"})
    spec = "the client to raise BadRequestError"
    assert _judge._client_maps(got, wanted) == [deviates("client", spec, "AuthenticationError")]


@pytest.mark.parametrize(
    ("status", "media", "findings"),
    [
        (200, "application/json", []),
        (400, "application/json", []),
        (418, "application/json", []),
        (429, "text/plain", [deviates("header Content-Type", "application/json", "text/plain")]),
        (418, "text/plain", [deviates("header Content-Type", "application/json", "text/plain")]),
        (200, None, [deviates("header Content-Type", "application/json", "None")]),
    ],
)
def test_content_type_is_the_one_the_spec_documents_for_the_status(
    status: int, media: str | None, findings: list[Finding]
) -> None:
    assert _judge._content_type(exchange(status, b"{}", media), status) == findings


def test_content_type_reads_the_media_type_without_parameters() -> None:
    got = exchange(400, b"{}", "Application/JSON; charset=utf-8")
    assert _judge._content_type(got, 400) == []


# --- _checks: judge_probe -----------------------------------------------------------------------


def test_a_probe_without_attempts_is_unchecked_as_not_sent() -> None:
    asked = probe("generates")
    assert _checks.judge_probe(asked, []) == ProbeResult(asked, unchecked="not sent")


def test_a_probe_with_an_unanswered_attempt_is_unchecked_with_its_failure() -> None:
    asked = probe("same_bytes", sends=2)
    billed = generation(cost="0.0002")
    lost = Attempt(Send(request()), failure="connection reset")
    result = _checks.judge_probe(asked, [billed, lost])
    assert result == ProbeResult(asked, unchecked="connection reset", spent=Decimal("0.0002"))


def test_an_unanswered_attempt_without_a_failure_reads_not_sent() -> None:
    asked = probe("generates")
    result = _checks.judge_probe(asked, [Attempt(Send(request()))])
    assert result == ProbeResult(asked, unchecked="not sent")


@pytest.mark.parametrize("status", [500, 503])
def test_a_server_error_leaves_the_probe_unchecked(status: int) -> None:
    asked = probe("refused", "ILLEGAL_PROMPT")
    attempt = refusal(status, envelope(status, "TASK_FAILED", "oops"))
    result = _checks.judge_probe(asked, [attempt])
    why = f"the API failed: {status} TASK_FAILED: 'oops'"
    assert result == ProbeResult(asked, unchecked=why)


def test_a_server_error_after_a_billed_answer_keeps_what_was_spent() -> None:
    asked = probe("same_bytes", sends=2)
    attempts = [generation(cost="0.003"), refusal(500, envelope(500, "TASK_FAILED"))]
    result = _checks.judge_probe(asked, attempts)
    assert result.unchecked == "the API failed: 500 TASK_FAILED: 'no'"
    assert result.spent == Decimal("0.003")


def test_a_499_is_judged_not_left_unchecked() -> None:
    asked = probe("refused", "ILLEGAL_PROMPT")
    result = _checks.judge_probe(asked, [refusal(499, envelope(499, "ILLEGAL_PROMPT"))])
    assert result.unchecked is None
    assert result.findings == (deviates("status", "400 for ILLEGAL_PROMPT", "499"),)


def test_a_generates_probe_is_judged_as_a_generation_of_the_type_asked() -> None:
    asked = probe("generates")
    body = request(response_image_type="jpeg")
    attempt = generation(body=body, fetches=(fetch(0, jpeg(), "image/jpeg"),), cost="0.001")
    result = _checks.judge_probe(asked, [attempt])
    type_finding = deviates("$.images[0].image_type", "'jpeg' (the type asked for)", "'png'")
    assert result == ProbeResult(
        asked, (type_finding,), "200: 1 jpeg image(s) of 64x64", spent=Decimal("0.001")
    )


def test_a_refused_probe_is_judged_against_its_reasons() -> None:
    asked = probe("refused", "INVALID_REQUEST_BODY")
    result = _checks.judge_probe(asked, [refusal(400, envelope(400, "ILLEGAL_PROMPT"))])
    got = "'ILLEGAL_PROMPT', a reason of the same kind (bad_request) it also knows"
    assert result == ProbeResult(
        asked,
        (tolerated("$.reason", "INVALID_REQUEST_BODY", got),),
        "400 ILLEGAL_PROMPT: 'no'",
    )


def test_an_authentication_probe_answers_under_its_title() -> None:
    asked = probe("authentication", "FAILED_TO_AUTH", title="no Authorization header")
    attempt = refusal(401, envelope(401, "FAILED_TO_AUTH", "failed to auth"))
    result = _checks.judge_probe(asked, [attempt])
    line = "401 FAILED_TO_AUTH: 'failed to auth'"
    assert result == ProbeResult(asked, (answered("no Authorization header", line),), line)


def test_an_authentication_probe_keeps_the_refusal_findings_before_its_answer() -> None:
    asked = probe("authentication", "INVALID_API_KEY", title="wrong")
    attempt = refusal(401, envelope(401, "FAILED_TO_AUTH"))
    result = _checks.judge_probe(asked, [attempt])
    assert result.findings[-1] == answered("wrong", "401 FAILED_TO_AUTH: 'no'")
    assert result.findings[0].where == "$.reason"


# --- _spent -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cost", "worst", "spent"),
    [
        (200, "0.00010", "0.5", Decimal("0.00010")),
        (200, "0", "0.0007", Decimal("0.0007")),
        (200, "0", "0", Decimal(0)),
        (400, "0.001", "0.002", Decimal(0)),
        (201, "0.001", "0.002", Decimal(0)),
    ],
)
def test_spent_is_the_cost_of_a_200_or_its_worst_cost_else_nothing(
    status: int, cost: str, worst: str, spent: Decimal
) -> None:
    attempt = generation(cost=cost, worst=worst, status=status)
    got = _checks._spent(attempt)
    assert got == spent
    assert str(got) == str(spent)


def test_spent_of_an_unanswered_attempt_is_zero() -> None:
    attempt = Attempt(Send(request(), cost=Decimal(1), worst_cost=Decimal(2)), failure="x")
    assert _checks._spent(attempt) == Decimal(0)


def test_a_probe_spends_the_sum_of_its_billed_answers_without_trailing_zeros() -> None:
    asked = probe("same_bytes", sends=2)
    attempts = [generation(cost="0.00010"), generation(cost="0", worst="0.00020")]
    result = _checks.judge_probe(asked, attempts)
    assert str(result.spent) == "0.0003"


# --- _format_field and _honoured ----------------------------------------------------------------


def format_attempts(second: Attempt) -> list[Attempt]:
    first = generation(
        body=request(response_image_type="jpeg"), fetches=(fetch(0, jpeg(), "image/jpeg"),)
    )
    return [first, second]


def test_format_field_answers_for_each_name_honoured_or_refused() -> None:
    body = request(response_image_type=None, response_image_format="jpeg")
    second = Attempt(Send(body), exchange(400, envelope(400, "INVALID_REQUEST_BODY", "unknown")))
    asked = probe("format_field", sends=2)
    result = _checks.judge_probe(asked, format_attempts(second))
    payload_type = deviates("$.images[0].image_type", "'jpeg' (the type asked for)", "'png'")
    assert result.findings == (
        payload_type,
        answered("response_image_type", "honoured: jpeg asked, JPEG bytes came back"),
        answered("response_image_format", "refused: 400 INVALID_REQUEST_BODY: 'unknown'"),
    )
    assert result.summary == "response_image_type honoured; response_image_format refused"


def test_format_field_judges_the_other_names_without_an_asked_type() -> None:
    body = request(response_image_type=None, response_image_format="jpeg")
    second = generation(body=body, payload=answer(image(0, "png")))
    result = _checks._format_field(probe("format_field"), format_attempts(second))
    findings, summary = result
    assert findings[-1] == answered(
        "response_image_format", "ignored: jpeg asked, PNG bytes came back"
    )
    assert [finding for finding in findings if finding.kind == "deviates"] == [
        deviates("$.images[0].image_type", "'jpeg' (the type asked for)", "'png'")
    ]
    assert summary == "response_image_type honoured; response_image_format ignored"


def test_format_field_a_refusal_of_an_other_name_is_judged_without_reasons() -> None:
    body = request(response_image_type=None, response_image_format="jpeg")
    second = Attempt(Send(body), exchange(400, envelope(400, "ILLEGAL_PROMPT")))
    findings, _ = _checks._format_field(probe("format_field"), format_attempts(second))
    assert findings[-1] == answered("response_image_format", "refused: 400 ILLEGAL_PROMPT: 'no'")
    assert len(findings) == 3


@pytest.mark.parametrize(
    ("attempt", "images", "line"),
    [
        (refusal(403, envelope(403, "X", "m")), {}, "refused: 403 X: 'm'"),
        (generation(), {}, "accepted, but no image could be read to tell"),
        (generation(), {1: ("png", b"x")}, "accepted, but no image could be read to tell"),
        (generation(), {0: (None, b"")}, "accepted, but no image could be read to tell"),
        (generation(), {0: ("webp", b"x")}, "honoured: webp asked, WEBP bytes came back"),
        (generation(), {0: ("png", b"x")}, "ignored: webp asked, PNG bytes came back"),
    ],
)
def test_honoured_reads_the_first_image_type_against_the_type_asked(
    attempt: Attempt, images: dict[int, Any], line: str
) -> None:
    judged = _judge.Judged([], "", images)
    assert _checks._honoured(attempt, judged, "webp") == line


# --- _seed_omitted ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "line"),
    [
        ({"extra": {"seed": 5}}, "accepted: 200; the server chose seed 5 (extra.seed)"),
        ({"extra": {"seed": 0}}, "accepted: 200; the server chose seed 0 (extra.seed)"),
        ({"extra": {"seed": "9"}}, "accepted: 200; the server chose seed 9 (extra.seed)"),
        ({"extra": {"seeds": 5}}, "accepted: 200"),
        ({"extra": [5]}, "accepted: 200"),
        ({}, "accepted: 200"),
    ],
)
def test_seed_omitted_answers_with_the_seed_the_server_chose(
    extra: dict[str, Any], line: str
) -> None:
    attempt = generation(body=request(seed=None), payload=answer(image(), **extra))
    result = _checks.judge_probe(probe("seed_omitted"), [attempt])
    assert result.findings[-1] == answered("without seed", line)
    assert result.summary == line


def test_seed_omitted_with_a_payload_that_is_not_an_object_is_accepted_without_a_seed() -> None:
    attempt = generation(body=request(seed=None), payload=[1], fetches=())
    findings, line = _checks._seed_omitted(probe("seed_omitted"), [attempt])
    assert line == "accepted: 200"
    assert findings[-1] == answered("without seed", "accepted: 200")


def test_seed_omitted_judges_the_generation_against_the_type_asked() -> None:
    body = request(seed=None, response_image_type="webp")
    attempt = generation(body=body, fetches=(fetch(0, webp(), "image/webp"),))
    findings, _ = _checks._seed_omitted(probe("seed_omitted"), [attempt])
    assert findings == [
        deviates("$.images[0].image_type", "'webp' (the type asked for)", "'png'"),
        answered("without seed", "accepted: 200"),
    ]


def test_seed_omitted_refused_is_judged_without_expected_reasons() -> None:
    attempt = refusal(400, envelope(400, "INVALID_REQUEST_BODY", "seed: required"))
    findings, line = _checks._seed_omitted(probe("seed_omitted"), [attempt])
    assert line == "refused: 400 INVALID_REQUEST_BODY: 'seed: required'"
    assert findings == [answered("without seed", line)]


# --- _same_bytes and _digest --------------------------------------------------------------------


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


def test_same_bytes_answers_the_same_with_size_and_digest() -> None:
    attempts = [generation(), generation()]
    result = _checks.judge_probe(probe("same_bytes", sends=2), attempts)
    line = f"the same bytes ({len(png())} bytes, sha256 {digest(png())})"
    assert result.findings == (answered("the same request twice", line),)
    assert result.summary == line
    assert result.spent == Decimal("0.0002")


def test_same_bytes_answers_different_with_both_sizes_and_digests() -> None:
    other = png(64, 64) + b"\x00"
    attempts = [generation(), generation(fetches=(fetch(0, other),))]
    findings, line = _checks._same_bytes(probe("same_bytes"), attempts)
    assert line == (
        f"different bytes ({len(png())} bytes, sha256 {digest(png())}; then {len(other)} "
        f"bytes, sha256 {digest(other)})"
    )
    assert findings[-1] == answered("the same request twice", line)
    assert findings[0].where == "image 0: whole"


@pytest.mark.parametrize("which", [0, 1])
def test_same_bytes_cannot_tell_when_an_image_did_not_download(which: int) -> None:
    attempts = [generation(), generation()]
    attempts[which] = generation(fetches=(ImageFetch(0, "u", failure="lost"),))
    findings, line = _checks._same_bytes(probe("same_bytes"), attempts)
    assert line == "could not tell: an image could not be downloaded"
    assert findings == [
        deviates("image 0: download", "the image", "lost"),
        answered("the same request twice", line),
    ]


def test_same_bytes_cannot_tell_without_a_first_image_or_with_empty_bytes() -> None:
    empty = served(b"", "image/png")
    attempts = [
        generation(fetches=(ImageFetch(1, "u", (served(png()),)),)),
        generation(fetches=(ImageFetch(0, "u", (empty,)),)),
    ]
    _, line = _checks._same_bytes(probe("same_bytes"), attempts)
    assert line == "could not tell: an image could not be downloaded"
    _, line = _checks._same_bytes(probe("same_bytes"), [attempts[1], generation()])
    assert line == "could not tell: an image could not be downloaded"


def test_same_bytes_judges_each_generation_against_its_asked_type() -> None:
    body = request(response_image_type="jpeg")
    attempts = [generation(), generation(body=body)]
    findings, _ = _checks._same_bytes(probe("same_bytes"), attempts)
    assert findings[:2] == [
        deviates("$.images[0].image_type", "'jpeg' (the type asked for)", "'png'"),
        deviates("image 0: Content-Type", "image/jpeg or application/octet-stream", "image/png"),
    ]


def test_digest_is_the_first_twelve_hex_digits_of_sha256() -> None:
    assert _checks._digest(b"") == "e3b0c44298fc"
    assert _checks._digest(b"abc") == "ba7816bf8f01"


# --- _rate_limit --------------------------------------------------------------------------------


def burst(count: int, image_num: int = 1) -> list[Attempt]:
    body = request(image_num=image_num)
    payload = answer(*(image(index, "webp") for index in range(image_num)))
    lost = (ImageFetch(0, "u", failure="not fetched"),)
    return [generation(body=body, payload=payload, fetches=lost) for _ in range(count)]


def limited(retry_after: str | None = None) -> Attempt:
    headers = () if retry_after is None else (("Retry-After", retry_after),)
    got = exchange(429, envelope(429, "RATE_LIMIT_EXCEEDED", "slow down"), headers=headers)
    return Attempt(Send(request()), got)


RATE = "RATE_LIMIT_EXCEEDED"


def test_rate_limit_without_a_429_says_the_limit_is_above_the_default() -> None:
    asked = probe("rate_limit", RATE, sends=3)
    result = _checks.judge_probe(asked, burst(3, image_num=4))
    line = (
        "no 429 after 12 images at once: this key's limit is above the spec's default "
        "of 10 images a minute"
    )
    assert result.findings == (answered("the limit", line),)
    assert result.summary == line
    assert result.spent == Decimal("0.0003")


@pytest.mark.parametrize(("retry_after", "shown"), [(None, "not sent"), ("5", "'5'"), ("0", "'0'")])
def test_rate_limit_shows_the_429_after_the_images_generated(
    retry_after: str | None, shown: str
) -> None:
    asked = probe("rate_limit", RATE, sends=3)
    attempts = [*burst(2, image_num=3), limited(retry_after), *burst(1)]
    result = _checks.judge_probe(asked, attempts)
    line = f"after 6 image(s): 429 RATE_LIMIT_EXCEEDED: 'slow down'; Retry-After {shown}"
    assert result.findings == (answered("the limit", line),)
    assert result.summary == line


def test_rate_limit_a_429_first_is_after_zero_images() -> None:
    findings, line = _checks._rate_limit(probe("rate_limit", RATE), [limited(), *burst(2)])
    assert line == "after 0 image(s): 429 RATE_LIMIT_EXCEEDED: 'slow down'; Retry-After not sent"
    assert findings == [answered("the limit", line)]


def test_rate_limit_with_a_retry_after_that_is_not_seconds_or_a_date_deviates() -> None:
    findings, line = _checks._rate_limit(probe("rate_limit", RATE), [limited("soon")])
    assert findings == [
        deviates("header Retry-After", "seconds or an HTTP date", "soon"),
        answered("the limit", line),
    ]
    assert line.endswith("; Retry-After 'soon'")


def test_rate_limit_accepts_a_retry_after_as_an_http_date() -> None:
    date = "Wed, 21 Oct 2015 07:28:00 GMT"
    findings, _ = _checks._rate_limit(probe("rate_limit", RATE), [limited(date)])
    assert [finding.kind for finding in findings] == ["answered"]


def test_rate_limit_judges_the_refusal_against_the_probe_reasons() -> None:
    asked = probe("rate_limit", "ILLEGAL_PROMPT")
    findings, _ = _checks._rate_limit(asked, [limited()])
    assert findings[0] == deviates(
        "$.reason", "ILLEGAL_PROMPT", "'RATE_LIMIT_EXCEEDED' (rate_limit)"
    )


def test_rate_limit_judges_the_200s_without_asked_type_or_downloads() -> None:
    attempts = [*burst(1), generation(body=request(image_num=2), fetches=())]
    findings, line = _checks._rate_limit(probe("rate_limit", RATE), attempts)
    assert findings[0] == deviates("$.images", "2 image(s) (image_num)", "1")
    assert findings[1:] == [answered("the limit", line)]
    assert line.startswith("no 429 after 3 images at once")


def test_rate_limit_a_lost_answer_cannot_tell_and_is_still_judged_by_judge_probe() -> None:
    asked = probe("rate_limit", RATE, sends=3)
    lost = Attempt(Send(request()), failure="ReadTimeout")
    result = _checks.judge_probe(asked, [*burst(1), lost, limited()])
    line = "could not tell: ReadTimeout"
    assert result == ProbeResult(
        asked, (answered("the limit", line),), line, spent=Decimal("0.0001")
    )


def test_rate_limit_counts_nothing_for_a_request_of_no_images() -> None:
    attempts = burst(2, image_num=1)
    attempts[0] = generation(body=request(image_num="1"), fetches=())
    _, line = _checks._rate_limit(probe("rate_limit", RATE), [*attempts, limited()])
    assert line.startswith("after 1 image(s): ")


# --- _reads -------------------------------------------------------------------------------------


def reads_probe() -> Probe:
    """The plan's probe that reads the balance with the key."""
    return Probe("b.r", "b", "the balance", "reads", (Send(None, operation=BALANCE),))


def test_reads_of_a_200_gives_the_judged_balance_and_no_answer_finding() -> None:
    findings, line = _checks._reads(reads_probe(), [read(media="text/plain")])
    assert findings == [deviates("header Content-Type", "application/json", "text/plain")]
    assert line == "200: " + ", ".join(BALANCE_FIELDS)


def test_reads_refused_answers_under_the_probe_title_after_the_refusal_findings() -> None:
    findings, line = _checks._reads(reads_probe(), [read(403, envelope(401, "API_NOT_ALLOWED"))])
    assert line == "could not be read with this key: 403 API_NOT_ALLOWED: 'no'"
    assert findings == [
        deviates("$.code", "403 (the HTTP status, repeated)", "401"),
        answered("the balance", line),
    ]


# --- _either and _asked_type --------------------------------------------------------------------


def test_either_judges_a_200_as_a_generation_of_the_type_given() -> None:
    judged = _checks._either(generation(), "png")
    assert judged == _judge.Judged([], "200: 1 png image(s) of 64x64", {0: ("png", png())})
    other = _checks._either(generation(), "jpeg")
    assert other.findings[0] == deviates(
        "$.images[0].image_type", "'jpeg' (the type asked for)", "'png'"
    )


def test_either_judges_anything_else_as_a_refusal_with_no_reasons_expected() -> None:
    judged = _checks._either(refusal(201, {}), None)
    assert judged.findings == [
        deviates("status", "an error status", "201: the request was accepted")
    ]
    refused = _checks._either(refusal(404, envelope(404, "API_NOT_FOUND")), "png")
    assert refused == _judge.Judged([], "404 API_NOT_FOUND: 'no'")


@pytest.mark.parametrize(
    ("body", "asked"),
    [
        ({"response_image_type": "webp"}, "webp"),
        ({"response_image_type": 5}, None),
        ({"response_image_format": "webp"}, None),
        ({}, None),
        (["response_image_type"], None),
        ("response_image_type", None),
    ],
)
def test_asked_type_is_the_string_response_image_type_of_the_body(
    body: Any, asked: str | None
) -> None:
    assert _checks._asked_type(Attempt(Send(body))) == asked


def test_every_check_of_the_plan_has_a_judge() -> None:
    # Read from the plan's own list of checks, so that a new one without a judge fails here.
    assert set(_checks._CHECKS) | set(_checks._WITH_HISTORY) == set(get_args(Check))
    assert not set(_checks._CHECKS) & set(_checks._WITH_HISTORY)
    for name in _checks._CHECKS:
        assert _checks._CHECKS[name] is getattr(_checks, f"_{name}"), name


# --- bytes that are not UTF-8, and findings kept across answers ---------------------------------


def test_a_body_that_is_not_utf8_is_shown_with_replacement_characters() -> None:
    raw = b"\xff\xfe oops"
    generated = _judge.judge_generation(
        Attempt(Send(request()), exchange(200, raw)), asked_type=None
    )
    assert generated.findings == [deviates("$", "a JSON body", "'\ufffd\ufffd oops'")]
    refused = _judge.judge_refusal(Attempt(Send(request()), exchange(502, raw)), None)
    assert refused.findings == [deviates("$", "the error envelope (JSON)", "'\ufffd\ufffd oops'")]
    failed = ImageFetch(0, "u", (served(raw, "text/plain", 403),))
    result = _judge.judge_image(failed, "png", (64, 64))
    assert result[0] == [
        deviates("image 0: download", "200 with the image", "403 '\ufffd\ufffd oops'")
    ]


def test_a_refusal_keeps_its_content_type_finding_beside_the_envelope_findings() -> None:
    attempt = refusal(400, {"code": 400, "reason": "ILLEGAL_PROMPT"}, "text/plain")
    judged = _judge.judge_refusal(attempt, frozenset({"ILLEGAL_PROMPT"}))
    assert judged.findings == [
        deviates("header Content-Type", "application/json", "text/plain"),
        deviates("$.message", "a required field: a string", "missing"),
    ]


def test_rate_limit_keeps_the_findings_of_every_answer_before_the_limit() -> None:
    odd = generation(body=request(image_num=2), fetches=())
    findings, line = _checks._rate_limit(probe("rate_limit", RATE), [odd, odd, limited("soon")])
    short = deviates("$.images", "2 image(s) (image_num)", "1")
    assert findings == [
        short,
        short,
        deviates("header Retry-After", "seconds or an HTTP date", "soon"),
        answered("the limit", line),
    ]
    assert line == "after 4 image(s): 429 RATE_LIMIT_EXCEEDED: 'slow down'; Retry-After 'soon'"


def test_a_generation_keeps_its_content_type_finding_beside_a_conforming_body() -> None:
    attempt = Attempt(Send(request()), exchange(200, answer(image()), "text/plain"))
    judged = _judge.judge_generation(attempt, asked_type="png", download=False)
    assert judged.findings == [deviates("header Content-Type", "application/json", "text/plain")]


def test_the_client_reads_a_generation_with_its_cost_at_an_aware_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[Any, ...]] = []
    monkeypatch.setattr(_judge, "parse_generation", lambda *args: seen.append(args))
    _judge.judge_generation(generation(cost="0.0042"), asked_type="png")
    ((_, read, cost, sent),) = seen
    assert read == request()
    assert cost == Decimal("0.0042")
    assert sent.utcoffset() == timedelta(0)


def test_judge_image_checks_wholeness_from_the_first_and_last_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[Any, ...]] = []
    monkeypatch.setattr(_judge, "incomplete", lambda *args: seen.append(args))
    data = png() + b"\x00" * (TAIL_BYTES + 40) + PNG_END
    _judge.judge_image(fetch(0, data), "png", (64, 64))
    assert seen == [("png", data[:HEAD_BYTES], data[-TAIL_BYTES:], len(data))]


def test_an_image_of_another_size_names_width_then_height_asked() -> None:
    findings, _, _ = _judge.judge_image(fetch(0, png(64, 64)), "png", (128, 32))
    expected = "128x32 (width x height asked for)"
    assert findings == [deviates("image 0: size", expected, "64x64")]


# --- _content_type under a spec documenting other media types -----------------------------------


@pytest.fixture
def other_media(monkeypatch: pytest.MonkeyPatch) -> None:
    """An operation whose 200 is documented as problem+json or JSON, whose 418 as plain text,
    and whose 204 with no content at all (the shipped spec documents JSON for every status)."""
    responses = {
        "200": {"content": {"application/problem+json": {}, "application/json": {}}},
        "204": {"description": "nothing"},
        "418": {"content": {"text/plain": {}}},
    }
    monkeypatch.setattr(
        _judge, "operation", lambda _: Operation("POST", "/x", {"responses": responses})
    )


@pytest.mark.usefixtures("other_media")
@pytest.mark.parametrize(
    ("status", "media", "findings"),
    [
        (200, "application/problem+json", []),
        (200, "application/json", []),
        (
            200,
            "text/html",
            [
                deviates(
                    "header Content-Type",
                    "application/problem+json or application/json",
                    "text/html",
                )
            ],
        ),
        (418, "text/plain", []),
        (
            418,
            "application/json",
            [deviates("header Content-Type", "text/plain", "application/json")],
        ),
        (204, "application/json", [deviates("header Content-Type", "", "application/json")]),
        (400, "application/json", []),
        (400, "text/plain", [deviates("header Content-Type", "application/json", "text/plain")]),
    ],
)
def test_content_type_lists_every_media_type_documented_for_the_status(
    status: int, media: str, findings: list[Finding]
) -> None:
    assert _judge._content_type(exchange(status, b"{}", media), status) == findings


@pytest.mark.usefixtures("other_media")
def test_a_generation_is_held_to_the_media_types_documented_for_200() -> None:
    attempt = Attempt(Send(request()), exchange(200, b"<", "text/plain"))
    judged = _judge.judge_generation(attempt, asked_type="png")
    expected = "application/problem+json or application/json"
    assert judged.findings[0] == deviates("header Content-Type", expected, "text/plain")


@pytest.mark.usefixtures("other_media")
def test_a_refusal_is_held_to_the_media_types_documented_for_its_status() -> None:
    judged = _judge.judge_refusal(refusal(418, b"<", "text/plain"), None)
    assert judged.findings == [deviates("$", "the error envelope (JSON)", "'<'")]


@pytest.fixture
def plain_balance(monkeypatch: pytest.MonkeyPatch) -> None:
    """The balance's 200 and 403 documented as plain text, the generation's left as shipped
    (JSON): a judge that asks about another operation or status than the answer's would say
    `application/json`."""
    shipped = _judge.operation
    responses = {"200": {"content": {"text/plain": {}}}, "403": {"content": {"text/plain": {}}}}

    def operation(operation_id: str) -> Operation:
        if operation_id == BALANCE:
            return Operation("GET", "/balance", {"responses": responses}, BALANCE)
        return shipped(operation_id)

    monkeypatch.setattr(_judge, "operation", operation)


@pytest.mark.usefixtures("plain_balance")
def test_a_read_is_held_to_the_media_types_its_operation_documents_for_200() -> None:
    assert _judge.judge_read(read(media="text/plain")).findings == []
    judged = _judge.judge_read(read(media="application/json"))
    assert judged.findings == [deviates("header Content-Type", "text/plain", "application/json")]


@pytest.mark.usefixtures("plain_balance")
def test_a_refusal_is_held_to_the_media_types_its_operation_documents() -> None:
    refused = read(403, envelope(403, "API_NOT_ALLOWED"), "text/plain")
    assert _judge.judge_refusal(refused, None).findings == []


OTHER = "flux1Other"


@pytest.fixture
def other_generation(monkeypatch: pytest.MonkeyPatch) -> None:
    """A second operation that generates, with the generation's answer schema and its 200
    documented as plain text (the shipped generation left as it is): a judge that looks up the
    default operation instead of the attempt's would say `application/json`."""
    shipped_operation, shipped_schema = _judge.operation, _judge.response_schema
    plain = {"responses": {"200": {"content": {"text/plain": {}}}}}

    def operation(operation_id: str) -> Operation:
        if operation_id == OTHER:
            return Operation("POST", "/other", plain, OTHER)
        return shipped_operation(operation_id)

    def response_schema(operation_id: str, status: int = 200) -> Any:
        return shipped_schema(GENERATE if operation_id == OTHER else operation_id, status)

    monkeypatch.setattr(_judge, "operation", operation)
    monkeypatch.setattr(_judge, "response_schema", response_schema)


@pytest.mark.usefixtures("other_generation")
def test_a_generation_is_held_to_the_media_types_of_its_own_operation() -> None:
    def judged(media: str) -> list[Finding]:
        attempt = Attempt(Send(request(), operation=OTHER), exchange(200, answer(image()), media))
        return _judge.judge_generation(attempt, asked_type="png", download=False).findings

    assert judged("text/plain") == []
    assert judged("application/json") == [
        deviates("header Content-Type", "text/plain", "application/json")
    ]
