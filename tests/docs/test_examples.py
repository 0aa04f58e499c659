"""Every code block of README.md, CONTRIBUTING.md and docs/ runs as its reader would run it
(tests/docs/runner.py says how each kind of block is run)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sybil import Document

from novita_flux.testing import ReferenceServer
from tests.docs.runner import DOCUMENTS, ROOT, Context, environment, parse_blocks
from tests.docs.summary import PROPERTY


@pytest.mark.slow
@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_every_example_runs_as_written(
    path: Path,
    novita_server: ReferenceServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    env = environment(novita_server.api_key, novita_server.url)
    for name in ("NOVITA_API_KEY", "NOVITA_BASE_URL"):
        monkeypatch.setenv(name, env[name])
    monkeypatch.chdir(tmp_path)
    document = Document.parse(str(path), parse_blocks)
    loop = asyncio.new_event_loop()
    ctx = Context(scratch=tmp_path, env=env, loop=loop)
    document.namespace["__docs__"] = ctx
    try:
        for example in document.examples():
            example.evaluate()
    finally:
        loop.close()
    request.node.user_properties.append((PROPERTY, dict(ctx.counts)))
