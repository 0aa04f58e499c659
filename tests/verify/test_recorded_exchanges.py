"""Reality seen once is a backward-compatibility test: every 200 the API was seen to send still
parses under the working spec.

The bodies are those of every VCR.py cassette in tests/recorded/ (exchanges recorded against the
real API; the folder may not exist yet), the 200 example of Novita's docs page as the working
spec carries it, and the same example as each released contract carried it: a spec edit that
rewrote the example to fit a narrower schema still meets the original.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from novita_flux import FluxSchnell, _spec
from novita_flux._schema import SchemaViolation, compile_schema, conform
from scripts.spec_diff.releases import Project, load, releases

RECORDED = Path(__file__).resolve().parents[1] / "recorded"


class Seen(NamedTuple):
    source: str
    body: Any  # the parsed JSON of a 200


def recorded_bodies(folder: Path) -> list[Seen]:
    """The 200 bodies of the endpoint in every cassette (VCR.py format 1) in `folder`; other
    exchanges (image downloads, errors, other endpoints) are skipped."""
    operation = _spec.operation(_spec.GENERATE)
    seen = []
    for cassette in sorted(folder.glob("*.yaml")):
        recorded = yaml.safe_load(cassette.read_text(encoding="utf-8"))
        for index, interaction in enumerate(recorded.get("interactions", [])):
            request, response = interaction["request"], interaction["response"]
            if response["status"]["code"] != 200 or request["method"].upper() != operation.method:
                continue
            if urlsplit(request["uri"]).path != operation.path:
                continue
            source = f"{cassette.name} interaction {index}"
            seen.append(Seen(source, json.loads(_text(response))))
    return seen


def _text(response: dict[str, Any]) -> str:
    """A cassette keeps a body as text, or as bytes (`!!binary`), gzipped if the recording did
    not decode it."""
    body = response["body"]["string"]
    if isinstance(body, str):
        return body
    encodings = {name.lower(): values for name, values in response.get("headers", {}).items()}
    if "gzip" in encodings.get("content-encoding", []) or body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    text: str = body.decode("utf-8")
    return text


def documented_examples() -> list[Seen]:
    """The docs page's 200 example, in the working spec and in every released one."""
    project = Project()
    documents = {"the working spec": _spec.document()}
    documents |= {project.name(path): load(path) for path in releases(project).values()}
    seen = []
    for name, document in documents.items():
        response = _spec.resolve(
            _spec.operation_in(document, _spec.GENERATE).body["responses"]["200"], document
        )
        seen.append(
            Seen(f"{name}'s 200 example", response["content"]["application/json"]["example"])
        )
    return seen


def still_parses(body: Any) -> None:
    """The working spec's validator accepts the body and the client reads it, as it would an
    answer from the API: every image, and the task id."""
    conform(compile_schema(_spec.response_schema(_spec.GENERATE, 200)), body)

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=body)

    http = httpx.Client(transport=httpx.MockTransport(answer))
    with FluxSchnell(api_key="recorded", http_client=http, max_retries=0) as flux:
        generation = flux.generate(**_spec.request_example(_spec.GENERATE))
    http.close()
    assert generation.task_id == body["task"]["task_id"]
    assert [image.url for image in generation.images] == [i["image_url"] for i in body["images"]]


SEEN = documented_examples() + recorded_bodies(RECORDED)


@pytest.mark.parametrize("seen", SEEN, ids=[seen.source for seen in SEEN])
def test_every_200_seen_still_parses_under_the_working_spec(seen: Seen) -> None:
    still_parses(seen.body)


# --- the loader and the check, on cassettes made here ---------------------------------------


def interaction(uri: str, status: int, body: Any, method: str = "POST", **headers: str) -> Any:
    return {
        "request": {"method": method, "uri": uri, "body": "{}", "headers": {}},
        "response": {
            "status": {"code": status, "message": "OK"},
            "headers": {name.replace("_", "-"): [value] for name, value in headers.items()},
            "body": {"string": body},
        },
    }


def write_cassette(folder: Path, name: str, *interactions: Any) -> None:
    folder.mkdir(exist_ok=True)
    cassette = {"interactions": list(interactions), "version": 1, "x_source": "made in a test"}
    (folder / name).write_text(yaml.safe_dump(cassette), encoding="utf-8")


def api_body(task_id: str, ttl: Any = 604800) -> dict[str, Any]:
    image = {"image_url": "https://r2.example/x.png?X-Amz-Signature=ab", "image_url_ttl": ttl}
    return {"images": [image | {"image_type": "png"}], "task": {"task_id": task_id}}


def test_the_loader_reads_only_the_endpoints_200s_from_vcr_cassettes(tmp_path: Path) -> None:
    endpoint = f"https://api.novita.ai{_spec.operation(_spec.GENERATE).path}"
    write_cassette(
        tmp_path,
        "a.yaml",
        interaction(endpoint, 200, json.dumps(api_body("as-text", "3600"))),
        interaction("https://r2.example/x.png", 200, b"\x89PNG\r\n", method="GET"),
        interaction(endpoint, 429, json.dumps({"code": 429, "reason": "RATE_LIMIT_EXCEEDED"})),
        interaction("https://api.novita.ai/v3beta/flux-1-dev", 200, "{}"),  # another endpoint
    )
    gzipped = gzip.compress(json.dumps(api_body("gzipped")).encode())
    write_cassette(tmp_path, "b.yaml", interaction(endpoint, 200, gzipped, Content_Encoding="gzip"))
    seen = recorded_bodies(tmp_path)
    assert [(s.source, s.body["task"]["task_id"]) for s in seen] == [
        ("a.yaml interaction 0", "as-text"),
        ("b.yaml interaction 0", "gzipped"),
    ]
    for body in seen:
        still_parses(body.body)


def test_a_recorded_body_the_working_spec_refuses_fails_the_check(tmp_path: Path) -> None:
    endpoint = f"https://api.novita.ai{_spec.operation(_spec.GENERATE).path}"
    write_cassette(
        tmp_path, "c.yaml", interaction(endpoint, 200, json.dumps(api_body("x", "soon")))
    )
    (seen,) = recorded_bodies(tmp_path)
    with pytest.raises(SchemaViolation, match=r"images\.0\.image_url_ttl: 'soon'"):
        still_parses(seen.body)
