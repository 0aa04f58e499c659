"""Reality seen once keeps the spec honest: every cassette under tests/recorded/ (written by
`novita-flux verify --record`, or the docs page's own example) replays through the client."""

from __future__ import annotations

from pathlib import Path

import pytest
import vcr

from novita_flux import FluxSchnell
from tests.replay import load, replay

RECORDED = Path(__file__).resolve().parents[1] / "recorded"
CASSETTES = sorted(RECORDED.glob("*.yaml"))
# Signed query strings are redacted in cassettes, so requests are matched without them.
MATCH_ON = ["method", "scheme", "host", "port", "path"]


@pytest.mark.parametrize("path", CASSETTES, ids=[path.stem for path in CASSETTES])
def test_every_recorded_exchange_replays_through_the_client(path: Path) -> None:
    assert replay(path)


def test_the_docs_example_is_seeded_and_marked_as_not_a_live_call() -> None:
    cassette = load(RECORDED / "docs-example.yaml")
    assert "NOT a live call" in cassette["x_source"]
    assert replay(RECORDED / "docs-example.yaml") == ["200 parsed: task xxx, 1 image(s)"]


def test_vcrpy_replays_the_docs_example_through_a_real_client() -> None:
    recorder = vcr.VCR(match_on=MATCH_ON, record_mode="none")
    with (
        recorder.use_cassette(str(RECORDED / "docs-example.yaml")),
        FluxSchnell(api_key="any-key", base_url="https://api.novita.ai") as flux,
    ):
        generation = flux.generate(
            "Extreme close-up of a single tiger eye", width=512, height=512, seed=2024, steps=4
        )
    (image,) = generation.images
    assert image.ttl == 604800
    assert image.type == "png"
    assert image.url.startswith("https://model-api-output.")
    assert ".r2.cloudflarestorage.com/" in image.url
    assert generation.task_id == "xxx"
