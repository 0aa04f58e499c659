"""Explicit examples for _images (names, slugs, streamed bytes, publishing): each pins an exact
value, so a small change to the code fails."""

from __future__ import annotations

import io
import logging
import os
import tempfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from novita_flux import (
    GeneratedImage,
    Generation,
    _images,
    _models,
)
from novita_flux._constants import LOGGER_NAME
from novita_flux._errors import ImageDownloadError, ImageExpiredError
from novita_flux._imagebytes import TAIL_BYTES
from novita_flux._images import (
    ImageReceiver,
    _current_umask,
    check_not_expired,
    file_name,
    prompt_slug,
    publish,
    sidecar,
    staged_file,
    storage_error,
    write_bytes_atomically,
    write_json_atomically,
)
from tests.support import MAGIC

PNG, JPEG, WEBP = MAGIC["png"], MAGIC["jpeg"], MAGIC["webp"]
EXPIRES = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def image(index: int = 0, image_type: str = "png", expires: datetime | None = None) -> Any:
    return GeneratedImage("https://host/x", 3600, image_type, expires, index)


def generation(request: dict[str, Any], seed: int = 7, images: list[Any] | None = None) -> Any:
    return Generation("task-9", images or [], seed, request, Decimal("0.003"))


REQUEST = {"prompt": "A Cat, on a Mat!", "width": 512, "height": 768, "steps": 4}


# --- file_name ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_fields", "seed", "index", "image_type", "override", "expected"),
    [
        (REQUEST, 42, 0, "png", None, "a-cat-on-a-mat_512x768_s4_seed42_0.png"),
        (REQUEST, 1, 3, "jpeg", None, "a-cat-on-a-mat_512x768_s4_seed1_3.jpg"),
        (REQUEST, 0, 1, "webp", None, "a-cat-on-a-mat_512x768_s4_seed0_1.webp"),
        (REQUEST, 5, 2, "png", "jpeg", "a-cat-on-a-mat_512x768_s4_seed5_2.jpg"),
        (REQUEST, 5, 2, "jpeg", "webp", "a-cat-on-a-mat_512x768_s4_seed5_2.webp"),
        ({"prompt": "x", "width": 64, "height": 128, "steps": 8}, 9, 0, "png", None,
         "x_64x128_s8_seed9_0.png"),
        ({}, 3, 0, "png", None, "image_NonexNone_sNone_seed3_0.png"),
    ],
)  # fmt: skip
def test_file_name_is_slug_size_steps_seed_index_and_the_real_types_extension(
    request_fields: dict[str, Any],
    seed: int,
    index: int,
    image_type: str,
    override: str | None,
    expected: str,
) -> None:
    made = file_name(generation(request_fields, seed), image(index, image_type), override)
    assert made == expected


def test_file_name_of_an_unknown_type_is_refused() -> None:
    with pytest.raises(KeyError):
        file_name(generation(REQUEST), image(0, "gif"))


# --- prompt_slug --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("", "image"),
        ("!!! ... ???", "image"),
        ("Hello, World!", "hello-world"),
        ("  --a__b..c  ", "a-b-c"),
        ("123 ABC", "123-abc"),
        ("Café Ünïcödé", "café-ünïcödé"),
        ("\ufb01ne \uff26\uff55\uff4c\uff4c", "fine-full"),  # NFKC: a ligature, full-width
        ("\u0301abc", "abc"),  # a combining mark cannot start the name
        ("\u0301\u0301ab", "ab"),
        ("! \u0301x", "x"),
        ("x\u0301y", "x\u0301y"),  # a mark inside a word is kept (x has no composed form)
        ("日本語 の 猫", "日本語-の-猫"),
        ("a/b\\c:d", "a-b-c-d"),
    ],
)
def test_prompt_slug_keeps_letters_digits_marks_and_joins_the_rest_with_one_dash(
    prompt: str, expected: str
) -> None:
    assert prompt_slug(prompt) == expected


@pytest.mark.parametrize(
    ("prompt", "limit", "expected"),
    [
        ("ab cd", 5, "ab-cd"),  # exactly at the limit: kept whole
        ("ab cd", 4, "ab"),  # one over: cut at the word boundary
        ("ab cd efgh", 5, "ab-cd"),  # the dash just past the limit is a boundary
        ("ab cd efgh", 6, "ab-cd"),
        ("ab cd efgh", 7, "ab-cd"),
        ("abcdefgh", 5, "abcde"),  # one long word: cut inside it
        ("a" * 41, 40, "a" * 40),
        ("a" * 40, 40, "a" * 40),
    ],
)
def test_prompt_slug_is_cut_at_a_word_boundary_only_over_the_limit(
    prompt: str, limit: int, expected: str
) -> None:
    assert prompt_slug(prompt, limit) == expected


def test_prompt_slug_default_limit_is_40() -> None:
    words = "alpha beta gamma delta epsilon zeta eta theta"  # 44 characters
    assert prompt_slug(words) == "alpha-beta-gamma-delta-epsilon-zeta-eta"
    assert prompt_slug("b" * 45) == "b" * 40


# --- check_not_expired --------------------------------------------------------------------------


class _Frozen(datetime):
    at = EXPIRES

    @classmethod
    def now(cls, tz: Any = None) -> Any:  # type: ignore[override]
        return cls.at


@pytest.mark.parametrize(
    ("now", "refused"),
    [
        (EXPIRES - timedelta(microseconds=1), False),
        (EXPIRES, True),
        (EXPIRES + timedelta(seconds=1), True),
    ],
)
def test_check_not_expired_refuses_from_exactly_expires_at(
    monkeypatch: pytest.MonkeyPatch, now: datetime, refused: bool
) -> None:
    monkeypatch.setattr(_Frozen, "at", now)
    monkeypatch.setattr(_models, "datetime", _Frozen)
    if not refused:
        assert check_not_expired(image(2, expires=EXPIRES)) is None
        return
    with pytest.raises(ImageExpiredError) as raised:
        check_not_expired(image(2, expires=EXPIRES))
    assert str(raised.value) == (
        "image 2 expired at 2030-01-02T03:04:05+00:00 (its link was valid for 3600 s); "
        "generate it again"
    )


def test_check_not_expired_never_refuses_a_link_with_no_expiry() -> None:
    assert check_not_expired(image(0, expires=None)) is None


def test_check_not_expired_compares_with_the_current_utc_time() -> None:
    assert check_not_expired(image(0, expires=datetime.now(UTC) + timedelta(hours=1))) is None
    with pytest.raises(ImageExpiredError, match=r"^image 1 expired at "):
        check_not_expired(image(1, expires=datetime.now(UTC) - timedelta(seconds=1)))


# --- storage_error ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (403, b"<Error><Message>Request has expired</Message></Error>"),
        (400, b"<Error><Code>ExpiredToken</Code></Error>"),
        (403, b"<Error><Code>ExpiredRequest</Code></Error>"),
        (403, b"request HAS EXPIRED"),
    ],
)
def test_storage_error_says_expired_for_400_or_403_with_the_hosts_expiry_words(
    status: int, body: bytes
) -> None:
    error = storage_error(image(4), status, body)
    assert type(error) is ImageExpiredError
    assert str(error) == (
        f"image 4: the storage host says its link has expired ({status}: {body.decode()}); "
        "generate it again"
    )


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (403, b"AccessDenied"),
        (404, b"Request has expired"),
        (500, b"<Code>ExpiredToken</Code>"),
        (401, b"Request has expired"),
        (403, b""),
    ],
)
def test_storage_error_is_a_plain_download_error_otherwise(status: int, body: bytes) -> None:
    error = storage_error(image(1), status, body)
    assert type(error) is ImageDownloadError
    assert str(error) == f"the storage host answered {status} for image 1: {body.decode()}"


def test_storage_error_quotes_200_bytes_of_the_body_decoded_with_replacement() -> None:
    head = b"\xff" + b"a" * 250
    error = storage_error(image(0), 502, head)
    assert str(error) == "the storage host answered 502 for image 0: \ufffd" + "a" * 199


# --- ImageReceiver ------------------------------------------------------------------------------


def receiver(image_type: str = "png", max_bytes: int = 10_000, index: int = 0) -> Any:
    return ImageReceiver(image(index, image_type), io.BytesIO(), max_bytes)


@pytest.mark.parametrize("header", [None, "", "abc", "-5", "1e3", " 5", "100", "0"])
def test_expect_length_accepts_a_missing_unreadable_or_small_enough_length(
    header: str | None,
) -> None:
    assert receiver(max_bytes=100).expect_length(header) is None


def test_expect_length_refuses_a_length_over_max_bytes_naming_both() -> None:
    with pytest.raises(ImageDownloadError) as raised:
        receiver(max_bytes=100, index=3).expect_length("101")
    assert str(raised.value) == "image 3 is over the 100-byte limit (101 bytes)"


def test_feed_writes_every_chunk_and_counts_the_size() -> None:
    taker = receiver()
    # Longer than the kept tail, in chunks that do not divide it: the tail must slide.
    padded = PNG[:-12] + bytes(range(256)) * 5 + PNG[-12:]
    assert len(padded) > TAIL_BYTES
    for start in range(0, len(padded), 7):
        taker.feed(padded[start : start + 7])
    assert taker.size == len(padded)
    assert taker.sink.getvalue() == padded
    assert taker._head == padded[:32]
    assert taker._tail == padded[-TAIL_BYTES:]
    assert taker.found == "png"
    assert taker.finish() == "png"


def test_feed_accepts_exactly_max_bytes_and_refuses_one_more() -> None:
    taker = receiver(max_bytes=len(PNG))
    taker.feed(PNG)
    assert taker.finish() == "png"
    over = receiver(max_bytes=len(PNG) - 1, index=5)
    over.feed(PNG[:10])
    with pytest.raises(ImageDownloadError) as raised:
        over.feed(PNG[10:])
    assert str(raised.value) == (
        f"image 5 is over the {len(PNG) - 1}-byte limit ({len(PNG)} bytes)"
    )
    assert over.sink.getvalue() == PNG[:10]  # the refused chunk is never written


def test_the_type_is_checked_as_soon_as_12_bytes_have_arrived() -> None:
    taker = receiver("webp", index=6)
    taker.feed(b"<html><body")  # 11 bytes: too few to judge
    assert taker.found is None
    with pytest.raises(ImageDownloadError) as raised:
        taker.feed(b">")
    assert str(raised.value) == (
        "image 6 should be a WEBP image but the storage host sent something else "
        "(first bytes b'<html><b')"
    )


def test_the_type_is_found_at_12_bytes_of_a_real_image() -> None:
    taker = receiver("webp")
    taker.feed(WEBP[:11])
    assert taker.found is None
    taker.feed(WEBP[11:12])
    assert taker.found == "webp"


@pytest.mark.parametrize(
    ("promised", "data", "found"), [("png", JPEG, "jpeg"), ("jpeg", WEBP, "webp")]
)
def test_another_image_type_than_promised_is_kept_with_one_warning(
    caplog: pytest.LogCaptureFixture, promised: str, data: bytes, found: str
) -> None:
    taker = receiver(promised, index=2)
    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        for start in range(0, len(data), 3):
            taker.feed(data[start : start + 3])
        assert taker.finish() == found
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            LOGGER_NAME,
            logging.WARNING,
            f"image 2 was promised as {promised.upper()} but is a {found.upper()} image; "
            "kept as what it is",
        )
    ]


def test_the_promised_type_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    taker = receiver("jpeg")
    with caplog.at_level(logging.DEBUG, logger=LOGGER_NAME):
        taker.feed(JPEG)
        assert taker.finish() == "jpeg"
    assert caplog.records == []


@pytest.mark.parametrize("data", [b"", b"\x89PNG\r"])
def test_finish_of_a_body_too_short_to_have_a_type_is_refused(data: bytes) -> None:
    taker = receiver("png", index=1)
    taker.feed(data)
    with pytest.raises(ImageDownloadError) as raised:
        taker.finish()
    assert str(raised.value) == (
        "image 1 should be a PNG image but the storage host sent something else "
        f"(first bytes {data[:8]!r})"
    )


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (PNG[:-1], "it does not end with PNG's IEND chunk"),
        (JPEG[:-2], "it does not end with JPEG's end-of-image marker"),
        (
            WEBP[:-4],
            f"the RIFF header promises {len(WEBP)} bytes but only {len(WEBP) - 4} arrived",
        ),
    ],
)
def test_finish_of_an_image_cut_short_raises_a_retryable_protocol_error(
    data: bytes, problem: str
) -> None:
    kind = "png" if data.startswith(b"\x89") else "jpeg" if data[:2] == b"\xff\xd8" else "webp"
    taker = receiver(kind, index=4)
    for start in range(0, len(data), 7):
        taker.feed(data[start : start + 7])
    with pytest.raises(httpx.RemoteProtocolError) as raised:
        taker.finish()
    expected = f"image 4 ended after {len(data)} bytes, before the image did: {problem}"
    assert str(raised.value) == expected


def test_keep_error_keeps_exactly_the_first_4096_bytes() -> None:
    taker = receiver()
    taker.keep_error(b"a" * 4000)
    assert taker.error_head == b"a" * 4000
    taker.keep_error(b"b" * 200)
    assert taker.error_head == b"a" * 4000 + b"b" * 96
    taker.keep_error(b"c")
    assert len(taker.error_head) == 4096
    assert taker.size == 0
    assert taker.sink.getvalue() == b""


# --- whole_on_disk ------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [PNG, JPEG, WEBP])
def test_whole_on_disk_takes_a_whole_image_of_each_type(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "x.png"  # the name's extension is not read: the bytes say the type
    path.write_bytes(data)
    assert _images.whole_on_disk(path) is True


@pytest.mark.parametrize(
    "data",
    [PNG[:-1], JPEG[:-2], WEBP[:-1], b"", b"not an image at all", b"GIF89a" + PNG[6:]],
)
def test_whole_on_disk_refuses_a_file_cut_short_or_that_is_no_image(
    tmp_path: Path, data: bytes
) -> None:
    path = tmp_path / "x.png"
    path.write_bytes(data)
    assert _images.whole_on_disk(path) is False


def test_whole_on_disk_of_a_missing_file_or_a_directory_is_false(tmp_path: Path) -> None:
    assert _images.whole_on_disk(tmp_path / "gone.png") is False
    assert _images.whole_on_disk(tmp_path) is False  # open() raises IsADirectoryError


# --- staged files, publish, atomic writes -------------------------------------------------------


def publish_bytes(directory: Path, data: bytes, target: Path) -> Path:
    with staged_file(directory) as handle:
        handle.write(data)
        return publish(handle, target)


def test_staged_file_is_hidden_in_the_directory_with_the_default_mode_and_removed(
    tmp_path: Path,
) -> None:
    mask = os.umask(0o022)
    os.umask(mask)
    with staged_file(tmp_path) as handle:
        path = Path(handle.name)
        assert path.parent == tmp_path
        assert path.name.startswith(".novita-")
        assert path.name.endswith(".part")
        assert path.stat().st_mode & 0o777 == 0o666 & ~mask
        handle.write(b"x")
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_publish_returns_the_existing_path_for_the_same_bytes_and_numbers_others(
    tmp_path: Path,
) -> None:
    target = tmp_path / "cat_0.png"
    assert publish_bytes(tmp_path, b"one", target) == target
    assert publish_bytes(tmp_path, b"one", target) == target
    assert publish_bytes(tmp_path, b"two", target) == tmp_path / "cat_0-2.png"
    assert publish_bytes(tmp_path, b"three", target) == tmp_path / "cat_0-3.png"
    assert publish_bytes(tmp_path, b"two", target) == tmp_path / "cat_0-2.png"
    assert publish_bytes(tmp_path, b"three", target) == tmp_path / "cat_0-3.png"
    contents = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    assert contents == {"cat_0.png": b"one", "cat_0-2.png": b"two", "cat_0-3.png": b"three"}


def test_publish_compares_contents_not_size_and_time(tmp_path: Path) -> None:
    target = tmp_path / "a.png"
    target.write_bytes(b"abc")
    os.utime(target, ns=(10**18, 10**18))
    with staged_file(tmp_path) as handle:
        handle.write(b"xyz")  # same size, same time below, other bytes
        handle.flush()
        os.utime(handle.name, ns=(10**18, 10**18))
        assert publish(handle, target) == tmp_path / "a-2.png"
    assert (tmp_path / "a-2.png").read_bytes() == b"xyz"


def test_publish_makes_the_file_and_its_directory_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    closed: list[int] = []
    real_fsync, real_close = os.fsync, os.close

    def fsync(descriptor: int) -> None:
        synced.append(descriptor)
        real_fsync(descriptor)

    def close(descriptor: int) -> None:
        closed.append(descriptor)
        real_close(descriptor)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "close", close)
    with staged_file(tmp_path) as handle:
        handle.write(b"data")
        handle_number = handle.fileno()
        publish(handle, tmp_path / "a.png")
    assert len(synced) == 2
    assert synced[0] == handle_number
    assert closed == [synced[1]]  # the directory's descriptor, synced then closed
    assert (tmp_path / "a.png").read_bytes() == b"data"


def test_sync_directory_of_a_missing_directory_is_silent(tmp_path: Path) -> None:
    assert _images._sync_directory(tmp_path / "gone") is None


def test_write_bytes_atomically_replaces_the_file_and_leaves_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    write_bytes_atomically(path, b"new")
    assert path.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_write_atomically_syncs_the_directory_after_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[tuple[Path, bool]] = []
    path = tmp_path / "f.bin"
    monkeypatch.setattr(
        _images, "_sync_directory", lambda directory: synced.append((directory, path.exists()))
    )
    write_bytes_atomically(path, b"data")
    assert synced == [(tmp_path, True)]  # once, for the file's own directory, after the rename


def test_write_bytes_atomically_stages_in_the_target_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-directory"))
    write_bytes_atomically(tmp_path / "f.bin", b"data")
    assert (tmp_path / "f.bin").read_bytes() == b"data"
    with staged_file(tmp_path) as handle:
        assert Path(handle.name).parent == tmp_path


def test_write_json_atomically_writes_sorted_indented_ascii_json_and_a_newline(
    tmp_path: Path,
) -> None:
    path = tmp_path / "x.json"
    write_json_atomically(path, {"b": [1, 2], "a": "é"})
    assert path.read_text() == '{\n  "a": "\\u00e9",\n  "b": [\n    1,\n    2\n  ]\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_sidecar_holds_task_index_type_seed_cost_and_the_exact_request() -> None:
    made = sidecar(generation(REQUEST, seed=11), image(3, "webp"))
    assert made == {
        "task_id": "task-9",
        "index": 3,
        "type": "webp",
        "seed": 11,
        "cost_usd": "0.003",
        "request": REQUEST,
    }


def test_current_umask_reads_the_process_umask_and_leaves_it_unchanged() -> None:
    previous = os.umask(0o027)
    try:
        assert _current_umask() == 0o027
        assert os.umask(0o027) == 0o027  # still what it was before the call
    finally:
        os.umask(previous)


def test_prompt_slug_never_starts_with_a_dash_left_by_a_dropped_mark() -> None:
    assert prompt_slug("\u0301-abc") == "abc"  # the mark goes, then the dash it hid


def test_prompt_slug_cut_looks_one_character_past_the_limit_and_no_further() -> None:
    # "abc-defg" is 8 > 7 characters: the cut falls back to "abc", never "abc-defg".
    assert prompt_slug("abc defg hi", limit=7) == "abc"
