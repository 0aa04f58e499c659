"""FluxSchnell and AsyncFluxSchnell are one client in two forms: the same public methods, with
the same parameters (names, kinds, defaults, annotations) and the same docstrings; the async
client's are coroutines wherever the sync client's do I/O. A parameter or a sentence added to
one and not the other fails here (the two `download` docstrings had drifted apart)."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from novita_flux import AsyncFluxSchnell, FluxSchnell


def public(cls: type) -> dict[str, Any]:
    return {name: inspect.getattr_static(cls, name) for name in dir(cls) if name[0] != "_"}


SYNC, ASYNC = public(FluxSchnell), public(AsyncFluxSchnell)
METHODS = sorted(name for name, member in SYNC.items() if callable(member))


def parameters(function: Any) -> list[tuple[str, Any, Any, Any]]:
    return [
        (p.name, p.kind, p.default, p.annotation)
        for p in inspect.signature(function).parameters.values()
    ]


def test_both_clients_have_the_same_public_names() -> None:
    assert set(SYNC) == set(ASYNC)
    assert {"generate", "generate_many", "balance", "download", "save"} <= set(METHODS)


@pytest.mark.parametrize("name", METHODS)
def test_a_method_takes_the_same_parameters_on_both_clients(name: str) -> None:
    sync, asynchronous = SYNC[name], ASYNC[name]
    assert parameters(sync) == parameters(asynchronous)
    assert (
        inspect.signature(sync).return_annotation
        == inspect.signature(asynchronous).return_annotation
    )
    # One method shared by both, or the same method awaited.
    shared = sync is asynchronous
    assert shared or (
        inspect.iscoroutinefunction(asynchronous) and not inspect.iscoroutinefunction(sync)
    )


@pytest.mark.parametrize("name", sorted(SYNC))
def test_a_public_name_says_the_same_on_both_clients(name: str) -> None:
    assert inspect.getdoc(SYNC[name]), f"FluxSchnell.{name} has no docstring"
    assert inspect.getdoc(SYNC[name]) == inspect.getdoc(ASYNC[name])
