"""Real calls to Novita's API, only when NOVITA_API_KEY is set (never in CI by default).

The smoke test asks for the cheapest request the spec allows (smallest size, one step, one
image), so a run costs a fraction of a cent, and checks the whole path: contract, parsing and
download. The verification runs `novita-flux verify`'s whole plan with a budget of a cent: it
takes a few minutes, paced to the API's 10 images a minute, and fails with the report when the
API no longer answers as the spec says.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from novita_flux import FluxSchnell, verify
from novita_flux._request import field_schema

pytestmark = pytest.mark.skipif(
    not os.environ.get("NOVITA_API_KEY"), reason="set NOVITA_API_KEY to run the live tests"
)


def test_live_generation_downloads_a_real_image() -> None:
    smallest = field_schema("width")["minimum"]
    with FluxSchnell(base_url="https://api.novita.ai") as flux:
        generation = flux.generate(
            "a small red circle", width=smallest, height=smallest, steps=1, seed=1
        )
        data = flux.download(generation.images[0])
    assert generation.task_id
    assert len(generation.images) == 1
    assert data.startswith(b"\x89PNG")


def test_live_api_still_answers_as_the_spec_says(tmp_path: Path) -> None:
    report = verify.run(base_url="https://api.novita.ai", max_cost="0.01", record=tmp_path)
    key = os.environ["NOVITA_API_KEY"].strip()
    for path in tmp_path.iterdir():
        assert key.encode() not in path.read_bytes(), path.name
    assert report.exit_status == 0, report.text()
