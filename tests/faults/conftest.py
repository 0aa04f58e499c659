"""What the fault tests share: one reference server per module (its counters are the history's
source, so no other test may touch it), and a clean census of the steps each command reaches."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from novita_flux.testing import ReferenceServer
from tests.faults.harness import History, environment, lines_file
from tests.faults.hooks import census

pytestmark = pytest.mark.slow

# Small and cheap, but with everything a batch meets: several requests, one of several images.
REQUESTS: list[dict[str, Any]] = [
    {"prompt": "fault a", "width": 64, "height": 64, "steps": 1, "seed": 1},
    {"prompt": "fault b", "width": 64, "height": 64, "steps": 1, "seed": 2, "image_num": 2},
    {"prompt": "fault c", "width": 64, "height": 64, "steps": 1, "seed": 3},
]


def batch_argv(source: Path, out: Path, *extra: str) -> tuple[str, ...]:
    return ("batch", str(source), "--out", str(out), "--images-per-minute", "0",
            "--concurrency", "1", *extra)  # fmt: skip


def generate_argv(out: Path, *extra: str) -> tuple[str, ...]:
    return ("generate", "fault g", "--width", "64", "--height", "64", "--steps", "1", "-n", "2",
            "--seed", "5", "--out", str(out), "--gallery", *extra)  # fmt: skip


def middle(count: int) -> int:
    """Which occurrence of a step to strike: the middle one (the first of one or two)."""
    return max(1, math.ceil(count / 2))


@pytest.fixture(scope="module")
def server() -> Iterator[ReferenceServer]:
    with ReferenceServer() as running:
        yield running


@pytest.fixture(scope="module")
def batch_census(server: ReferenceServer, tmp_path_factory: pytest.TempPathFactory) -> Counter[str]:
    """How often a clean batch of REQUESTS reaches each step."""
    directory = tmp_path_factory.mktemp("census-batch")
    source = lines_file(directory / "in.jsonl", REQUESTS)
    with census() as counts:
        run = History(server, directory / "out").cli(*batch_argv(source, directory / "out"))
    assert run.status == 0, run.stderr
    return counts


@pytest.fixture(scope="module")
def generate_census(
    server: ReferenceServer, tmp_path_factory: pytest.TempPathFactory
) -> Counter[str]:
    """How often a clean `generate` reaches each step."""
    out = tmp_path_factory.mktemp("census-generate")
    with census() as counts, environment(server):
        run = History(server, out).cli(*generate_argv(out))
    assert run.status == 0, run.stderr
    return counts
