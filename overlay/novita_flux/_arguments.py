"""Checks of the arguments the spec does not describe: what `download`, `save` and
`generate_many` are given besides requests. Each refusal is a ValidationError naming the
parameter, raised before anything is sent or written, never a TypeError or AttributeError
half-way through a call that was paid for."""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar

import httpx

from novita_flux._config import check_count
from novita_flux._errors import ValidationError
from novita_flux._images import EXTENSIONS, sidecar
from novita_flux._models import GeneratedImage, Generation
from novita_flux._schema import show

T = TypeVar("T")


def _refuse(field: str, value: Any, expected: str, why: str | None = None) -> ValidationError:
    return ValidationError(
        field, value, expected, f"{field}: {why or show(value)} is not {expected}"
    )


def check_image(image: Any, field: str = "image") -> GeneratedImage:
    """A GeneratedImage whose fields are what the client needs to fetch and name it."""
    if not isinstance(image, GeneratedImage):
        raise _refuse(field, image, "a GeneratedImage")
    checks: list[tuple[str, Any, bool, str]] = [
        ("url", image.url, isinstance(image.url, str), "a string"),
        ("type", image.type, image.type in EXTENSIONS, f"one of {', '.join(EXTENSIONS)}"),
        ("index", image.index, _is_int(image.index), "an integer"),
        ("ttl", image.ttl, _is_int(image.ttl), "an integer"),
        (
            "expires_at",
            image.expires_at,
            image.expires_at is None
            or (isinstance(image.expires_at, datetime) and image.expires_at.tzinfo is not None),
            "None or a timezone-aware datetime",
        ),
    ]
    for name, value, good, expected in checks:
        if not good:
            raise _refuse(f"{field}.{name}", value, expected)
    return image


def check_generation(generation: Any, metadata: Any = None) -> Generation:
    """A Generation the client can save: its images checked as `check_image` does, its request
    a mapping, and with `metadata` its sidecar something JSON can write."""
    if not isinstance(generation, Generation):
        raise _refuse("generation", generation, "a Generation")
    if not isinstance(generation.images, list):
        raise _refuse("generation.images", generation.images, "a list of GeneratedImage")
    for index, image in enumerate(generation.images):
        check_image(image, f"generation.images[{index}]")
    if not isinstance(generation.request, Mapping):
        raise _refuse("generation.request", generation.request, "a mapping of request fields")
    if metadata:
        try:
            json.dumps(sidecar(generation, generation.images[0]) if generation.images else {})
        except (TypeError, ValueError) as error:
            raise _refuse(
                "generation", generation, "a generation JSON can describe", f"({error})"
            ) from None
    return generation


def check_metadata(metadata: Any) -> bool | Mapping[str, Any]:
    """True, False, or a mapping of more fields for each sidecar, which JSON can write."""
    if isinstance(metadata, bool):
        return metadata
    expected = "True, False or a mapping of JSON fields"
    if not isinstance(metadata, Mapping) or not all(isinstance(key, str) for key in metadata):
        raise _refuse("metadata", metadata, expected)
    try:
        json.dumps(dict(metadata), allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        raise _refuse("metadata", metadata, expected) from None
    return metadata


def check_callback(field: str, callback: T, *, awaited: bool = False) -> T:
    """None or a callable; an async function only where it is `awaited` (it would otherwise be
    called, never run, and dropped without a word)."""
    if callback is not None and not callable(callback):
        raise _refuse(field, callback, "None or a callable")
    if not awaited and inspect.iscoroutinefunction(callback):
        raise _refuse(field, callback, "a plain function here (an async one is never awaited)")
    return callback


def check_directory(directory: Any) -> str | os.PathLike[str]:
    """A path of a directory: a str or an os.PathLike that gives one, without a NUL."""
    expected = "a directory's path (a str or os.PathLike)"
    try:
        path = os.fspath(directory)
    except TypeError:
        raise _refuse("directory", directory, expected) from None
    if not isinstance(path, str) or "\x00" in path:
        raise _refuse("directory", directory, expected)
    checked: str | os.PathLike[str] = directory
    return checked


def check_max_bytes(max_bytes: Any) -> int:
    return check_count("max_bytes", max_bytes, 1)


def check_requests(requests: Any) -> Iterable[Any]:
    if isinstance(requests, str | bytes | Mapping) or not _is_iterable(requests):
        raise _refuse("requests", requests, "an iterable of request mappings")
    checked: Iterable[Any] = requests
    return checked


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_iterable(value: Any) -> bool:
    try:
        iter(value)
    except TypeError:
        return False
    return True


def check_operation(operation_id: Any, body: Any) -> Any:
    """An operation of the spec, and a body it can carry: any JSON value for an operation that
    takes one (it is sent as given, unchecked), None for one that does not."""
    from novita_flux._spec import operations  # the spec is read on first use, not at import

    known = operations()
    if not isinstance(operation_id, str) or operation_id not in known:
        raise _refuse("operation_id", operation_id, f"one of {', '.join(known)}")
    if "requestBody" not in known[operation_id].body:
        if body is not None:
            raise _refuse("body", body, f"None ({operation_id} takes no body)")
        return body
    try:
        json.dumps(body, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        raise _refuse("body", body, "a JSON value") from None
    return body


def check_url(url: Any) -> Any:
    if isinstance(url, str | httpx.URL):
        return url
    raise _refuse("url", url, "a string or an httpx.URL")


def check_http_request(request: Any) -> httpx.Request:
    if isinstance(request, httpx.Request):
        return request
    raise _refuse(
        "request", request, "an httpx.Request (from build_request or build_image_request)"
    )
