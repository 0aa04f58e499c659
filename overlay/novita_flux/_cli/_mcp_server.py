"""`novita-flux mcp`: the client as a Model Context Protocol server (stdio), for LLM agents.

Three tools: `generate_image` (sends one request, saves its images into the output directory and
returns their paths, the task id, the seed and the exact cost, with a small preview),
`estimate_cost` and `balance`. Each tool's input schema is drawn from the spec: generate_image's
is the spec's own request schema (every range, enum and description, `$ref`s followed), with the
client's defaults written in, so the agent sees what is allowed before it asks.

Money follows the CLI's rules. A request is checked and priced before anything is sent, and
refused (nothing sent) when it is out of range or when it would take what this server has spent
past `--max-total-cost`, a budget for as long as the server runs. A call is recorded in the
output directory before it is sent (`novita-flux generate` into the same directory finishes what
a killed server left); a call that was paid for and not saved returns its task id and the links
its images can still be fetched from, never just an error. What a call may have cost counts
against the budget.

Imports the `mcp` SDK (the `mcp` extra) and Pillow (for the preview); only the `mcp` command
imports this module, so `import novita_flux` never does.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import attrs

from novita_flux._cli import _calls as calls
from novita_flux._client import AsyncFluxSchnell
from novita_flux._constants import DEFAULT_HEIGHT, DEFAULT_IMAGE_NUM, DEFAULT_STEPS, DEFAULT_WIDTH
from novita_flux._errors import (
    BudgetExceededError,
    NovitaError,
    ResponseValidationError,
    SaveIncompleteError,
    ValidationError,
)
from novita_flux._format import usd
from novita_flux._models import GeneratedImage, Generation
from novita_flux._request import as_budget, estimate_cost, prepare_request
from novita_flux._spec import GENERATE, Schema, request_schema, resolve
from novita_flux._version import __version__

SERVER_NAME: Final = "novita-flux"
PREVIEW_SIZE: Final = 256  # pixels on the longer side: enough to see, small enough to send
PRICED: Final = ("width", "height", "steps", "image_num")
# The client's defaults for what an agent leaves out (the spec marks these fields required).
DEFAULTS: Final[dict[str, Any]] = {
    "width": DEFAULT_WIDTH,
    "height": DEFAULT_HEIGHT,
    "steps": DEFAULT_STEPS,
    "image_num": DEFAULT_IMAGE_NUM,
}


# --- the tools' input schemas, from the spec ----------------------------------------------------


def inlined(schema: Schema) -> Schema:
    """A schema of the spec made self-contained for a client that cannot follow `$ref`: every
    reference followed, `allOf` merged, and the spec's own `x-` notes left out."""
    node = resolve(schema)
    merged: Schema = {}
    for part in node.get("allOf", ()):
        merged.update(inlined(part))
    for key, value in node.items():
        if key == "allOf" or key.startswith("x-"):
            continue
        if isinstance(value, dict):
            value = (
                {name: inlined(item) for name, item in value.items()}
                if key == "properties"
                else inlined(value)
            )
        merged[key] = value
    return merged


def tool_schemas() -> dict[str, Schema]:
    """Each tool's input schema: the spec's request schema, as an agent calls it."""
    request = inlined(request_schema(GENERATE))
    properties = {name: dict(field) for name, field in request["properties"].items()}
    for name, default in DEFAULTS.items():
        properties[name]["default"] = default
    properties["seed"]["description"] += " Default: a random seed, returned with the images."
    generate = {**request, "properties": properties, "required": ["prompt"]}
    estimate = {
        "type": "object",
        "properties": {name: properties[name] for name in PRICED},
        "additionalProperties": False,
    }
    return {
        "generate_image": generate,
        "estimate_cost": estimate,
        "balance": {"type": "object", "properties": {}, "additionalProperties": False},
    }


DESCRIPTIONS: Final = {
    "generate_image": "Generate images with FLUX.1 [schnell] from a text prompt and save them. "
    "The request is checked against the API's ranges and priced before anything is sent; a "
    "request out of range, or past this server's budget, is refused and costs nothing. Returns "
    "the saved files, the task id, the seed and the exact cost in USD, with a small preview.",
    "estimate_cost": "The exact price in USD of a generate_image call with these sizes, from "
    "the API's own formula, and what is left of this server's budget. Sends nothing.",
    "balance": "The account's balance in USD: what the API key can still spend. Free.",
}


# --- what a tool answers -----------------------------------------------------------------------


@attrs.frozen
class Answer:
    """A tool's answer: one line for the agent to read, the same as data, and an image."""

    text: str
    data: dict[str, Any]
    error: bool = False
    preview: tuple[bytes, str] | None = None  # (bytes, media type)


class Budget:
    """What this server may still spend: every call's price is reserved before it is sent, kept
    once the call may have been billed, and given back when it surely was not."""

    def __init__(self, limit: Decimal | None) -> None:
        self.limit = limit
        self.spent = Decimal(0)  # paid for, or may have been
        self._reserved = Decimal(0)
        self._lock = asyncio.Lock()

    @property
    def left(self) -> Decimal | None:
        return None if self.limit is None else self.limit - self.spent - self._reserved

    async def reserve(self, cost: Decimal) -> None:
        async with self._lock:
            left = self.left
            if left is not None and cost > left:
                raise BudgetExceededError(cost, left, "call (what is left of --max-total-cost)")
            self._reserved += cost

    def settle(self, cost: Decimal, *, paid: bool) -> None:
        self._reserved -= cost
        if paid:
            self.spent += cost

    def as_dict(self) -> dict[str, str | None]:
        left = self.left
        return {
            "spent": str(self.spent),
            "max_total_cost": None if self.limit is None else str(self.limit),
            "left": None if left is None else str(left),
        }


class Tools:
    """The tools, over one client: what each does, with no knowledge of MCP itself."""

    def __init__(self, flux: AsyncFluxSchnell, out: Path, budget: Budget) -> None:
        self.flux = flux
        self.out = out
        self.budget = budget

    async def call(self, name: str, arguments: Mapping[str, Any] | None) -> Answer:
        tools: dict[str, Callable[[dict[str, Any]], Awaitable[Answer]]] = {
            "generate_image": self.generate_image,
            "estimate_cost": self.estimate_cost,
            "balance": self.balance,
        }
        tool = tools.get(name)
        if tool is None:
            return _refused(f"no tool {name!r}; the tools are {', '.join(tools)}")
        if arguments is not None and not isinstance(arguments, Mapping):
            return _refused("the arguments must be an object")
        return await tool(dict(arguments or {}))

    async def estimate_cost(self, arguments: dict[str, Any]) -> Answer:
        unknown = sorted(set(arguments) - set(PRICED))
        if unknown:
            return _refused(f"{unknown[0]}: unknown field; known fields: {', '.join(PRICED)}")
        try:
            fields = {name: arguments.get(name, DEFAULTS[name]) for name in PRICED}
            cost = estimate_cost(**fields)
        except ValidationError as error:
            return _refused(str(error))
        data = {**fields, "cost": str(cost), "currency": "USD", "budget": self.budget.as_dict()}
        return Answer(f"${usd(cost)} for {_said(fields)}", data)

    async def balance(self, arguments: dict[str, Any]) -> Answer:
        if arguments:
            return _refused(f"{next(iter(arguments))}: unknown field; balance takes none")
        try:
            balance = await self.flux.balance()
        except NovitaError as error:
            return Answer(f"the balance could not be read: {error}", {"error": str(error)}, True)
        data = balance.as_dict()
        return Answer(f"${usd(balance.available_balance)} available", data)

    async def generate_image(self, arguments: dict[str, Any]) -> Answer:
        try:
            body, cost = prepare_request(arguments)
            await self.budget.reserve(cost)
        except (ValidationError, BudgetExceededError) as error:
            return _refused(str(error))
        try:
            record = calls.begin(self.out, body, cost)
        except OSError as error:
            self.budget.settle(cost, paid=False)
            return _refused(f"cannot record the call in {self.out} ({error.strerror or error})")
        problem = None
        try:
            generation = await self.flux.generate(**body)
        except ResponseValidationError as error:  # a 200 that breaks the contract: paid
            self.budget.settle(cost, paid=True)
            if error.generation is None:
                return _failed(error, cost, body)
            generation, problem = error.generation, f"{type(error).__name__}: {error}"
        except NovitaError as error:
            self.budget.settle(cost, paid=error.possibly_billed)
            if not error.possibly_billed:
                calls.done(record)
            return _failed(error, cost, body)
        else:
            self.budget.settle(cost, paid=True)
        # The answer is in hand: saving is what counts now, and a failure to save is said.
        with contextlib.suppress(OSError):
            calls.answered(record, generation)
        return await self._saved(generation, record, problem)

    async def _saved(self, generation: Generation, record: Path, problem: str | None) -> Answer:
        try:
            paths = await self.flux.save(generation, self.out, metadata=True)
        except SaveIncompleteError as error:
            unsaved = [image for image, _ in error.failures]
            return _unsaved(generation, error.saved, unsaved, str(error), self.budget)
        except OSError as error:
            text = f"saving failed: {error.strerror or error}"
            return _unsaved(generation, [], generation.images, text, self.budget)
        calls.done(record)
        if len(generation.images) != generation.images_paid_for and problem is None:
            problem = (
                f"the API answered {len(generation.images)} image(s) for the "
                f"{generation.images_paid_for} paid for: every image it holds is saved"
            )
        data = {
            **_paid(generation),
            "paths": [str(path) for path in paths],
            "budget": self.budget.as_dict(),
        }
        if problem is not None:
            data["problem"] = problem
        text = (
            f"saved {len(paths)} image(s) of task {generation.task_id} (seed {generation.seed}, "
            f"${usd(generation.cost)}): {', '.join(str(path) for path in paths)}"
        )
        return Answer(
            text + (f"; {problem}" if problem else ""),
            data,
            problem is not None,
            _preview(paths[0]) if paths else None,
        )


def _refused(reason: str) -> Answer:
    return Answer(f"refused, nothing was sent: {reason}", {"refused": reason, "sent": False}, True)


def _failed(error: NovitaError, cost: Decimal, body: dict[str, Any]) -> Answer:
    said = f"{type(error).__name__}: {error}"
    data: dict[str, Any] = {
        "error": said,
        "possibly_billed": error.possibly_billed,
        "cost": str(cost) if error.possibly_billed else "0",
        "seed": body["seed"],
        "task_id": getattr(error, "task_id", None),
    }
    return Answer(said, data, True)


def _unsaved(
    generation: Generation,
    saved: list[Path],
    unsaved: list[GeneratedImage],
    why: str,
    budget: Budget,
) -> Answer:
    """Paid for and not (all) saved: the task and the links it can still be fetched from."""
    links = [_link(image) for image in unsaved]
    data = {
        **_paid(generation),
        "paths": [str(path) for path in saved],
        "unsaved": links,
        "budget": budget.as_dict(),
    }
    where = "; ".join(
        f"image {link['index']} at {link['url']}"
        + (f" until {link['expires_at']}" if link["expires_at"] else "")
        for link in links
    )
    paid = f"task {generation.task_id}, ${usd(generation.cost)}"
    text = f"paid for ({paid}), not all saved ({why}): {where}"
    return Answer(text, data, True)


def _paid(generation: Generation) -> dict[str, Any]:
    return {
        "task_id": generation.task_id,
        "seed": generation.seed,
        "cost": str(generation.cost),
        "currency": "USD",
        "request": generation.request,
    }


def _link(image: GeneratedImage) -> dict[str, Any]:
    expires = image.expires_at.isoformat() if image.expires_at else None
    return {"index": image.index, "url": image.url, "expires_at": expires}


def _said(fields: Mapping[str, Any]) -> str:
    return (
        f"{fields['image_num']} image(s) of {fields['width']}x{fields['height']}, "
        f"{fields['steps']} steps"
    )


def _preview(path: Path) -> tuple[bytes, str] | None:
    """A PNG of at most PREVIEW_SIZE pixels a side, for the agent to look at."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.thumbnail((PREVIEW_SIZE, PREVIEW_SIZE))
            buffer = io.BytesIO()
            image.save(buffer, "PNG")
    except OSError:
        return None  # the image is saved; a preview is a courtesy
    return buffer.getvalue(), "image/png"


# --- MCP -----------------------------------------------------------------------------------------


def build_server(tools: Tools) -> Any:
    """The MCP server (the SDK's low-level Server) offering `tools`."""
    import mcp.types as types
    from mcp.server.lowlevel import Server

    schemas = tool_schemas()

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(
            tools=[
                types.Tool(name=name, description=DESCRIPTIONS[name], input_schema=schema)
                for name, schema in schemas.items()
            ]
        )

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        answer = await tools.call(params.name, params.arguments)
        content: list[Any] = [types.TextContent(text=answer.text)]
        if answer.preview is not None:
            data, media_type = answer.preview
            content.append(
                types.ImageContent(data=base64.b64encode(data).decode(), mime_type=media_type)
            )
        content.append(types.TextContent(text=json.dumps(answer.data, ensure_ascii=False)))
        return types.CallToolResult(
            content=content, structured_content=answer.data, is_error=answer.error
        )

    return Server(
        SERVER_NAME,
        version=__version__,
        instructions="FLUX.1 [schnell] text to image on Novita AI. Every call is priced before "
        "it is sent; estimate_cost and balance are free.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


async def serve_stdio(flux: AsyncFluxSchnell, out: Path, max_total_cost: Decimal | None) -> None:
    """Serve the tools over stdin and stdout until the client closes them."""
    from mcp.server.stdio import stdio_server

    budget = Budget(None if max_total_cost is None else as_budget(max_total_cost))
    server = build_server(Tools(flux, out, budget))
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())
