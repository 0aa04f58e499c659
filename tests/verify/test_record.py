"""`verify --record`: one redacted VCR.py cassette per probe, which the suite can replay."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
import vcr
import yaml
from hypothesis import given
from hypothesis import strategies as st

from novita_flux import BadRequestError, FluxSchnell
from novita_flux._errors import status_error
from novita_flux.testing import ReferenceServer
from novita_flux.verify import build_plan, run
from novita_flux.verify._yaml import dump
from tests.replay import load, replay

KEY = "sk-record-00112233445566778899-do-not-leak"
MATCH_ON = ["method", "scheme", "host", "port", "path"]


@pytest.fixture(scope="module", params=["documented", "observed"])
def recorded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp(f"cassettes-{request.param}")
    with ReferenceServer(api_key=KEY, profile=request.param) as server:
        report = run(api_key=KEY, base_url=server.url, record=directory, images_per_minute=0)
        assert report.exit_status == 0, report.text()
        # The rate limit on its own, once the server has one: a 429 to record.
        server.faults.images_per_minute = 10
        report = run(
            api_key=KEY,
            base_url=server.url,
            record=directory,
            probe_rate_limit=True,
            groups=["rate-limit"],
            images_per_minute=0,
        )
        assert report.exit_status == 0, report.text()
    return directory


def test_every_probe_gets_a_cassette_and_none_holds_the_key(recorded: Path) -> None:
    files = sorted(recorded.iterdir())
    probes = build_plan(probe_rate_limit=True).probes
    assert [path.name for path in files] == sorted(f"{probe.id}.yaml" for probe in probes)
    queries = []
    for path in files:
        data = path.read_bytes()
        assert KEY.encode() not in data, path.name
        for interaction in load(path)["interactions"]:  # no such header at all
            assert "authorization" not in {n.lower() for n in interaction["request"]["headers"]}
        # Every signed query's values replaced, the names kept.
        queries += re.findall(rb"https?://[^?\s]+\?([^\"\s\\]+)", data)
    assert queries  # image links, in the API's bodies and as the URIs of the downloads
    for query in queries:
        assert all(item.endswith(b"=REDACTED") for item in query.split(b"&")), query


def test_recorded_cassettes_replay_through_the_client(recorded: Path) -> None:
    lines = [line for path in sorted(recorded.glob("*.yaml")) for line in replay(path)]
    assert any(line.startswith("200 parsed") for line in lines)
    assert any(line.endswith("-> BadRequestError") for line in lines)
    assert any(line.endswith("-> AuthenticationError") for line in lines)
    assert any(line.endswith("-> RateLimitError") for line in lines)
    assert any(line.startswith("image: a whole jpeg") for line in lines)


def test_task_ids_are_kept_and_the_probe_is_named(recorded: Path) -> None:
    cassette = load(recorded / "bounds.image_num.max.yaml")
    assert cassette["x_probe"]["id"] == "bounds.image_num.max"
    assert "redacted" in cassette["x_source"]
    api, *images = cassette["interactions"]
    task_id = json.loads(api["response"]["body"]["string"])["task"]["task_id"]
    assert len(images) == 8
    assert all(f"/images/{task_id}/" in image["request"]["uri"] for image in images)
    assert api["x_authorization"] == "the API key (not stored)"


def test_vcrpy_replays_a_recording_through_a_real_client(recorded: Path) -> None:
    cassette = load(recorded / "types.jpeg.yaml")
    request = cassette["interactions"][0]["request"]
    base_url = request["uri"].removesuffix("/v3beta/flux-1-schnell")
    recorder = vcr.VCR(match_on=MATCH_ON, record_mode="none")
    with (
        recorder.use_cassette(str(recorded / "types.jpeg.yaml")),
        FluxSchnell(api_key="any-key", base_url=base_url) as flux,
    ):
        generation = flux.generate(**json.loads(request["body"]))
        data = flux.download(generation.images[0])
    assert data.startswith(b"\xff\xd8\xff")
    with recorder.use_cassette(str(recorded / "invalid.width.above_max.yaml")):
        error = status_error(httpx.post(request["uri"], content=b"{}"))
    assert isinstance(error, BadRequestError)
    assert error.reason == "INVALID_REQUEST_BODY"


@given(
    text=st.text(st.characters(codec=None, exclude_categories=())),
    data=st.binary(),
    number=st.integers(),
)
def test_the_cassette_writer_round_trips_any_text_and_bytes(
    text: str, data: bytes, number: int
) -> None:
    document = {text or "k": [{"string": text, "bytes": data, "n": number, "none": None}]}
    assert yaml.safe_load(dump(document)) == document


def test_a_cassette_is_on_disk_before_it_takes_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written as every other file the package replaces: fsynced, then renamed (a crash never
    leaves an empty cassette under the probe's name), then its directory fsynced (the name
    survives a power loss too)."""
    import os

    from novita_flux.verify._probes import Probe
    from novita_flux.verify._record import Recorder
    from novita_flux.verify._redact import Redactor
    from novita_flux.verify._report import ProbeResult

    steps: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (steps.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(
        os, "replace", lambda *paths: (steps.append("replace"), real_replace(*paths))[1]
    )
    probe = Probe("p", "valid", "a probe", "generates", ())
    path = Recorder(tmp_path, Redactor(KEY), "http://x").write(probe, [], ProbeResult(probe))
    assert yaml.safe_load(path.read_text())["x_probe"]["id"] == "p"
    assert steps == ["fsync", "replace", "fsync"]
