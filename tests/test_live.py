"""One real call to Novita's API, only when NOVITA_API_KEY is set (never in CI by default).

It asks for the cheapest request the spec allows (smallest size, one step, one image), so a run
costs a fraction of a cent, and checks the whole path: contract, parsing and download.
"""

from __future__ import annotations

import os

import pytest

from novita_flux import FluxSchnell
from novita_flux._request import field_schema

pytestmark = pytest.mark.skipif(
    not os.environ.get("NOVITA_API_KEY"), reason="set NOVITA_API_KEY to run the live smoke test"
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
