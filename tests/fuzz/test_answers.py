"""Any answer the API could send, over both clients: a 200 that follows the spec or breaks it,
any JSON, any bytes, any error status with any body and headers, and image links with odd hosts
(labels too long or empty, punycode that does not decode, IPv6 literals, userinfo, ports out of
range, schemes that are not http).

Whatever comes back, only NovitaErrors escape; a paid answer keeps its task id and every link
that can be read (on the Generation, or on ResponseValidationError and SaveIncompleteError); and
one link that cannot be fetched never costs the images beside it.

The API and one storage host answer through httpx.MockTransport; every other host goes through
the clients' real transport, so a host the socket layer cannot take fails there as it would for
a user (the fuzz's `offline` fixture refuses every lookup off this machine).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from novita_flux import (
    AsyncFluxSchnell,
    FluxSchnell,
    Generation,
    ImageExpiredError,
    NovitaError,
    ResponseValidationError,
    SaveIncompleteError,
)
from tests.fuzz.budget import fuzz
from tests.fuzz.conftest import Inputs
from tests.fuzz.values import json_values, odd_links
from tests.strategies import conforming_bodies, error_answers, nonconforming_bodies
from tests.support import MAGIC

API = "https://api.novita.ai"
STORAGE = "https://storage.example"
FUZZ = fuzz(0.5)
RETRY_AFTER = ("0", "1", "-1", "inf", "nan", "1e309", "Wed, 21 Oct 2015 07:28:00 GMT", "x", "")


class Answer(NamedTuple):
    status: int
    content: bytes
    headers: dict[str, str]
    kind: str


def good_links() -> st.SearchStrategy[str]:
    return st.integers(0, 99).map(lambda n: f"{STORAGE}/out/{n}.png?X-Amz-Signature=abc")


@st.composite
def with_links(draw: st.DrawFn, body: dict[str, Any]) -> dict[str, Any]:
    """The body with each image's link good or odd."""
    for image in body.get("images", []):
        image["image_url"] = draw(good_links() | odd_links())
    return body


@st.composite
def answers(draw: st.DrawFn) -> Answer:
    kind = draw(st.sampled_from(["conforming", "nonconforming", "any JSON", "any bytes", "error"]))
    status, headers = 200, {"Content-Type": "application/json"}
    if kind == "conforming":
        body = draw(conforming_bodies().flatmap(with_links))
        content = json.dumps(body).encode()
    elif kind == "nonconforming":
        content = draw(nonconforming_bodies())
    elif kind == "any JSON":
        content = json.dumps(draw(json_values())).encode("utf-8", "surrogatepass")
    elif kind == "any bytes":
        content = draw(st.binary(max_size=200))
    else:
        status, content, _ = draw(error_answers())
    if draw(st.booleans()):
        headers["Retry-After"] = draw(st.sampled_from(RETRY_AFTER))
    return Answer(status, content, headers, kind)


def readable(answer: Answer) -> tuple[str | None, list[str]]:
    """The task id and the links of a 200 body, read as leniently as the README promises for a
    body that breaks the contract: an entry of `images` that is a link, or an object whose
    `image_url` is one (an http(s) URL with a host)."""
    try:
        body = json.loads(answer.content)
    except ValueError:
        return None, []
    if not isinstance(body, dict):
        return None, []
    task = body.get("task")
    task_id = task.get("task_id") if isinstance(task, dict) else body.get("task_id")
    links = []
    for item in body.get("images") if isinstance(body.get("images"), list) else []:
        url = item.get("image_url") if isinstance(item, dict) else item
        if isinstance(url, str) and _is_link(url):
            links.append(url)
    return (task_id if isinstance(task_id, str) else None), links


def _is_link(text: str) -> bool:
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _on_storage(url: str) -> bool:
    try:
        return httpx.URL(url).host == "storage.example" and url.startswith(f"{STORAGE}/")
    except (httpx.InvalidURL, ValueError):
        return False


class Hosts:
    """The API's answer and the storage host, as mounted transports."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer

    def api(self, request: httpx.Request) -> httpx.Response:
        answer = self.answer
        return httpx.Response(answer.status, content=answer.content, headers=answer.headers)

    def storage(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=MAGIC["png"], headers={"Content-Type": "image/png"})

    def mounts(self) -> dict[str, httpx.MockTransport]:
        return {API: httpx.MockTransport(self.api), STORAGE: httpx.MockTransport(self.storage)}


def check_paid(answer: Answer, error: ResponseValidationError) -> Generation | None:
    """A 200 that could not be read keeps its task id and every readable link."""
    task_id, links = readable(answer)
    assert error.task_id == task_id, (error.task_id, task_id)
    assert [image.url for image in error.images] == links
    generation = error.generation
    if links:
        assert generation is not None
        assert generation.task_id == (task_id or "")
    return generation


def check_saved(generation: Generation, saved: list[Path], failures: list[Any]) -> None:
    """Every image is saved or named as not saved, and every image on the good host is saved,
    whatever its neighbours' links were."""
    assert len(saved) + len(failures) == len(generation.images)
    for image, error in failures:
        assert isinstance(error, NovitaError)
        if isinstance(error, ImageExpiredError):  # a short TTL may run out: not a link's fault
            continue
        assert not _on_storage(image.url), (image.url, error)
    for path in saved:
        assert path.read_bytes() == MAGIC["png"]


def outcome_of(answer: Answer, error: Exception | None) -> str:
    said = type(error).__name__ if error is not None else "generated"
    return f"{answer.kind}: {said}"


def run_sync(answer: Answer, directory: Path) -> str:
    hosts = Hosts(answer)
    with (
        httpx.Client(mounts=hosts.mounts()) as http,
        FluxSchnell(api_key="sk-fuzz", base_url=API, http_client=http) as flux,
    ):
        error: Exception | None = None
        try:
            generation: Generation | None = flux.generate("a fox", width=64, height=64)
        except ResponseValidationError as unreadable:
            generation, error = check_paid(answer, unreadable), unreadable
        except NovitaError as failed:
            return outcome_of(answer, failed)
        if generation is None:
            return outcome_of(answer, error)
        if error is None:
            check_answered(answer, generation)
        try:
            saved = flux.save(generation, directory)
        except SaveIncompleteError as incomplete:
            check_incomplete(generation, incomplete)
            return outcome_of(answer, incomplete)
        check_saved(generation, saved, [])
        return outcome_of(answer, error)


async def run_async(answer: Answer, directory: Path) -> str:
    hosts = Hosts(answer)
    async with (
        httpx.AsyncClient(mounts=hosts.mounts()) as http,
        AsyncFluxSchnell(api_key="sk-fuzz", base_url=API, http_client=http) as flux,
    ):
        error: Exception | None = None
        try:
            generation: Generation | None = await flux.generate("a fox", width=64, height=64)
        except ResponseValidationError as unreadable:
            generation, error = check_paid(answer, unreadable), unreadable
        except NovitaError as failed:
            return outcome_of(answer, failed)
        if generation is None:
            return outcome_of(answer, error)
        if error is None:
            check_answered(answer, generation)
        try:
            saved = await flux.save(generation, directory)
        except SaveIncompleteError as incomplete:
            check_incomplete(generation, incomplete)
            return outcome_of(answer, incomplete)
        check_saved(generation, saved, [])
        return outcome_of(answer, error)


def check_answered(answer: Answer, generation: Generation) -> None:
    """A body that follows the spec is read whole: its task and every link it lists."""
    body = json.loads(answer.content)
    assert generation.task_id == body["task"]["task_id"]
    assert [image.url for image in generation.images] == [i["image_url"] for i in body["images"]]


def check_incomplete(generation: Generation, error: SaveIncompleteError) -> None:
    """The error names the task and, for each image not saved, the link it can still be
    fetched from."""
    assert error.generation.task_id == generation.task_id
    assert generation.task_id in str(error)
    for image, _ in error.failures:
        assert image.url in str(error)
    check_saved(generation, error.saved, error.failures)


@pytest.mark.parametrize("client", ["sync", "async"])
@FUZZ
@given(answer=answers())
def test_any_answer_raises_only_novita_errors_and_keeps_what_was_paid_for(
    client: str, answer: Answer, tmp_path: Path, sleeps: Any, inputs: Inputs
) -> None:
    directory = tmp_path / "saved"
    if client == "sync":
        outcome = run_sync(answer, directory)
    else:
        outcome = asyncio.run(run_async(answer, directory))
    inputs.took(f"answers ({client} client)", outcome)


# --- the links issue 20 reports ---------------------------------------------------------------

REPORTED_HOSTS = ["a" * 64 + ".example", "a..b", "xn--a"]
# Found by this fuzz: punycode IDNA 2008 refuses (both clients), a port past 65535 (the async
# client's connection attempt raised an OverflowError in an ExceptionGroup).
FOUND_HOSTS = ["xn--ls8h.la", "127.0.0.1:99999", "127.0.0.1:-1"]


@pytest.mark.parametrize("client", ["sync", "async"])
@pytest.mark.parametrize("host", REPORTED_HOSTS + FOUND_HOSTS)
def test_a_link_no_connection_can_be_made_to_costs_only_its_own_image(
    client: str, host: str, tmp_path: Path
) -> None:
    body = {
        "images": [
            {"image_url": f"https://{host}/0.png", "image_url_ttl": 3600, "image_type": "png"},
            {"image_url": f"{STORAGE}/1.png", "image_url_ttl": 3600, "image_type": "png"},
        ],
        "task": {"task_id": "task-odd-host"},
    }
    answer = Answer(200, json.dumps(body).encode(), {}, "reported")
    if client == "sync":
        outcome = run_sync(answer, tmp_path)
    else:
        outcome = asyncio.run(run_async(answer, tmp_path))
    assert outcome == "reported: SaveIncompleteError"
    assert len(list(tmp_path.glob("a-fox_*_1.png"))) == 1  # the image beside it is saved
    assert not list(tmp_path.glob("*_0.png"))


# Found once links were read as RFC 3986 URIs (`format: uri` admits any scheme): `mailto:x` went
# as far as the transport, and the sync client's cookie handling raised a bare ValueError.
OTHER_SCHEMES = ["mailto:x", "ftp://h/0.png", "file:///etc/passwd", "data:image/png;base64,AA=="]


@pytest.mark.parametrize("client", ["sync", "async"])
@pytest.mark.parametrize("link", OTHER_SCHEMES)
def test_a_link_of_another_scheme_than_http_is_never_fetched_and_costs_only_its_image(
    client: str, link: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Behind a client whose own transport takes every URL (as a test's MockTransport does):
    # only the client's check keeps such a link from being fetched.
    mounts = Hosts.mounts

    def every_url(hosts: Hosts) -> dict[str, httpx.MockTransport]:
        caught = httpx.MockTransport(lambda request: httpx.Response(404))
        return {**mounts(hosts), "all://": caught}

    monkeypatch.setattr(Hosts, "mounts", every_url)
    body = {
        "images": [
            {"image_url": link, "image_url_ttl": 3600, "image_type": "png"},
            {"image_url": f"{STORAGE}/1.png", "image_url_ttl": 3600, "image_type": "png"},
        ],
        "task": {"task_id": "task-odd-scheme"},
    }
    answer = Answer(200, json.dumps(body).encode(), {}, "reported")
    if client == "sync":
        outcome = run_sync(answer, tmp_path)
    else:
        outcome = asyncio.run(run_async(answer, tmp_path))
    assert outcome == "reported: SaveIncompleteError"
    assert len(list(tmp_path.glob("a-fox_*_1.png"))) == 1
    assert not list(tmp_path.glob("*_0.png"))
