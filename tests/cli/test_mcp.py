"""`novita-flux mcp`, end to end: the MCP SDK's own client starts the command over stdio, as an
agent's host would, and lists, calls and is refused by its tools."""

from __future__ import annotations

import base64
import io
import os
import sys
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from PIL import Image

from novita_flux import _spec
from novita_flux._cli._mcp_server import tool_schemas
from novita_flux.testing import ReferenceServer

pytestmark = [pytest.mark.slow, pytest.mark.anyio]


def command(*argv: str, env: dict[str, str] | None = None) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable, args=["-m", "novita_flux", "mcp", *argv], env=env
    )


@pytest.fixture
async def mocked(tmp_path: Path) -> AsyncIterator[Client]:
    """The server with --mock and a budget of $0.004: one 1024x1024 image ($0.003), not two."""
    params = command("--mock", "--out", str(tmp_path), "--max-total-cost", "0.004")
    async with Client(params) as client:
        yield client


def text(result: Any) -> str:
    return str(result.content[0].text)


async def test_the_tools_show_the_spec_s_own_bounds_and_defaults(mocked: Client) -> None:
    tools = {tool.name: tool for tool in (await mocked.list_tools()).tools}
    assert set(tools) == {"generate_image", "estimate_cost", "balance"}
    schema = tools["generate_image"].input_schema
    spec = _spec.request_schema(_spec.GENERATE)["properties"]
    for name in ("width", "height", "steps", "image_num", "seed"):
        field = schema["properties"][name]
        assert (field["minimum"], field["maximum"]) == (
            spec[name]["minimum"],
            spec[name]["maximum"],
        )
        assert field["description"].startswith(spec[name]["description"].strip()[:40])
    assert schema["properties"]["prompt"]["maxLength"] == spec["prompt"]["maxLength"]
    image_type = schema["properties"]["response_image_type"]
    assert image_type["enum"] == ["png", "webp", "jpeg"]  # the $ref followed
    assert image_type["default"] == "png"
    assert schema["properties"]["width"]["default"] == 1024  # the client's default
    assert schema["required"] == ["prompt"]
    assert schema["additionalProperties"] is False
    assert "$ref" not in str(schema)
    assert tools["estimate_cost"].input_schema == tool_schemas()["estimate_cost"]


async def test_an_image_is_generated_saved_and_previewed(mocked: Client, tmp_path: Path) -> None:
    result = await mocked.call_tool("generate_image", {"prompt": "a fox", "seed": 7})
    assert not result.is_error, text(result)
    data = result.structured_content
    assert (data["seed"], data["cost"], data["currency"]) == (7, "0.003", "USD")
    (path,) = data["paths"]
    assert Path(path).parent == tmp_path
    assert Path(path).read_bytes().startswith(b"\x89PNG")
    assert Path(path + ".json").exists()  # the sidecar says how to make it again
    assert data["task_id"] in text(result)
    (preview,) = [item for item in result.content if item.type == "image"]
    assert preview.mime_type == "image/png"
    with Image.open(io.BytesIO(base64.b64decode(preview.data))) as image:
        assert max(image.size) == 256
    assert data["budget"] == {"spent": "0.003", "max_total_cost": "0.004", "left": "0.001"}
    assert not list(tmp_path.glob(".novita-flux-call-*"))  # the call's record is done with


async def test_past_the_budget_a_call_is_refused_with_nothing_sent(
    mocked: Client, tmp_path: Path
) -> None:
    before = (await mocked.call_tool("balance", {})).structured_content["available_balance"]
    first = await mocked.call_tool("generate_image", {"prompt": "a fox"})
    assert not first.is_error
    after_one = (await mocked.call_tool("balance", {})).structured_content["available_balance"]
    assert Decimal(before) - Decimal(after_one) == Decimal("0.003")
    second = await mocked.call_tool("generate_image", {"prompt": "a fox"})
    assert second.is_error
    assert text(second) == (
        "refused, nothing was sent: estimated cost $0.003 of this call (what is left of "
        "--max-total-cost) exceeds the budget $0.001"
    )
    assert second.structured_content["sent"] is False
    after_two = (await mocked.call_tool("balance", {})).structured_content["available_balance"]
    assert after_two == after_one  # nothing was billed
    assert len(list(tmp_path.glob("*.png"))) == 1
    estimate = await mocked.call_tool("estimate_cost", {"width": 512, "height": 512})
    assert estimate.structured_content["cost"] == "0.00075"
    assert estimate.structured_content["budget"]["left"] == "0.001"


async def test_a_request_out_of_range_is_refused_naming_the_field(mocked: Client) -> None:
    for arguments, said in [
        ({"prompt": "x", "width": 4000}, "width: 4000 is not an integer in [64, 2048]"),
        ({"prompt": ""}, "prompt: '' is not a string of 1 to 1024 characters"),
        ({"prompt": "x", "size": 3}, "size: unknown field"),
        ({"width": 64}, "prompt: missing"),
    ]:
        result = await mocked.call_tool("generate_image", arguments)
        assert result.is_error
        assert text(result).startswith(f"refused, nothing was sent: {said}"), text(result)


@pytest.fixture
def server() -> Iterator[ReferenceServer]:
    with ReferenceServer() as running:
        yield running


def against(server: ReferenceServer, out: Path, *argv: str) -> StdioServerParameters:
    env = {**os.environ, "NOVITA_API_KEY": server.api_key}
    return command("--base-url", server.url, "--out", str(out), *argv, env=env)


async def test_nothing_reaches_the_api_past_the_budget(
    server: ReferenceServer, tmp_path: Path
) -> None:
    async with Client(against(server, tmp_path, "--max-total-cost", "0.001")) as client:
        refused = await client.call_tool("generate_image", {"prompt": "a fox"})
        small = await client.call_tool(
            "generate_image", {"prompt": "a fox", "width": 512, "height": 512}
        )
    assert refused.is_error
    assert not small.is_error
    assert server.faults.api_requests == 1  # the refused call never left


async def test_a_paid_image_that_cannot_be_saved_comes_back_as_its_task_and_links(
    server: ReferenceServer, tmp_path: Path
) -> None:
    server.faults.cut_images_next(10)  # every download of it arrives cut short
    async with Client(against(server, tmp_path)) as client:
        result = await client.call_tool("generate_image", {"prompt": "a fox", "width": 64})
    assert result.is_error
    data = result.structured_content
    ((task_id, _),) = server.faults.billed
    assert data["task_id"] == task_id
    (link,) = data["unsaved"]
    assert link["url"].startswith(server.image_base_url)
    assert link["url"] in text(result)
    assert text(result).startswith(f"paid for (task {task_id}, $")
    assert data["paths"] == []


async def test_a_server_error_after_the_task_may_have_run_counts_against_the_budget(
    server: ReferenceServer, tmp_path: Path
) -> None:
    server.faults.fail_next(1, reason="TASK_FAILED")
    async with Client(against(server, tmp_path, "--max-total-cost", "0.005")) as client:
        failed = await client.call_tool("generate_image", {"prompt": "a fox"})
        estimate = await client.call_tool("estimate_cost", {})
    assert failed.is_error
    assert failed.structured_content["possibly_billed"] is True
    assert estimate.structured_content["budget"]["left"] == "0.002"


@pytest.mark.parametrize("closed", ["stdin", "stdout"])
def test_mcp_with_its_stdio_closed_says_so_in_one_line(closed: str, tmp_path: Path) -> None:
    """The protocol runs over stdin and stdout: with either closed, one line and status 2 (it
    was a traceback from inside the SDK)."""
    import subprocess

    command = [sys.executable, "-m", "novita_flux", "mcp", "--mock", "--out", str(tmp_path)]
    shell = f"exec {' '.join(command)} {'<&-' if closed == 'stdin' else '>&- </dev/null'}"
    done = subprocess.run(  # noqa: S602 - the shell is what closes the descriptor
        shell, shell=True, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "novita-flux: mcp: stdin and stdout must be open: the protocol runs over them"
    ]
