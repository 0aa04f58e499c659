"""The library's public calls, found from `novita_flux.__all__` and their own signatures, and the
values drawn for each parameter: any Python value, what its type hint builds, and a plausible
value (so that one odd argument is tried among good ones and calls get as far as they can)."""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
import httpx
from hypothesis import strategies as st

import novita_flux
from tests.fuzz.values import TIMEOUTS, any_value
from tests.strategies import FIELDS, in_range

# What __all__ holds that is not a call to fuzz, and why.
NOT_CALLS: dict[str, str] = {
    "__version__": "a string",
    "GeneratedImage": "a value the client returns (fuzzed as an argument of download and save)",
    "Generation": "a value the client returns (fuzzed as an argument of save)",
    "BatchResult": "a value generate_many returns",
    "Balance": "a value balance() returns",
}


@attrs.frozen
class Call:
    """One public call: a function, or a method (or constructor) of a public class."""

    owner: type | None
    name: str
    function: Callable[..., Any]

    @property
    def label(self) -> str:
        return f"{self.owner.__name__}.{self.name}" if self.owner else self.name

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.function)

    def parameters(self) -> dict[str, inspect.Parameter]:
        found = inspect.signature(self.function).parameters
        return {name: p for name, p in found.items() if name != "self"}

    def hints(self) -> dict[str, Any]:
        return typing.get_type_hints(self.function)


def public_calls() -> list[Call]:
    """Every public function, and every public method and constructor of every public class that
    is not an exception or a value the client returns."""
    calls = []
    for name in novita_flux.__all__:
        thing = getattr(novita_flux, name)
        if name in NOT_CALLS or (isinstance(thing, type) and issubclass(thing, BaseException)):
            continue
        if inspect.isfunction(thing):
            calls.append(Call(None, name, thing))
            continue
        assert isinstance(thing, type), f"{name}: a public name the fuzz does not know"
        calls.append(Call(thing, "__init__", thing.__init__))
        for method_name, method in inspect.getmembers(thing, inspect.isfunction):
            if not method_name.startswith("_"):
                calls.append(Call(thing, method_name, method))
    return calls


# Types whose constructors hypothesis would call with values they refuse (httpx asserts on its
# own arguments), or that would open real connections: drawn from values.py instead, or given
# as plausible values by the test.
_BUILT_ELSEWHERE: dict[Any, st.SearchStrategy[Any]] = {
    httpx.Timeout: TIMEOUTS,
    httpx.Client: st.nothing(),
    httpx.AsyncClient: st.nothing(),
    # httpx.URL refuses most text; odd URLs it takes are drawn as text (str) anyway.
    httpx.URL: st.sampled_from(
        ["http://127.0.0.1:9/x.png", "https://a..b/x", "http://xn--a/", "ftp://host/x", "/x"]
    ).map(httpx.URL),
    # A request is sent as it is, and its connection errors are httpx's own (send's contract):
    # only requests built by the client itself are sent, and the examples do that.
    httpx.Request: st.nothing(),
}


def from_hint(hint: Any) -> st.SearchStrategy[Any]:
    """What hypothesis builds from a type hint (each member of a union on its own); nothing
    for what it cannot build (a bare callable, a protocol)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return st.one_of([from_hint(member) for member in args])
    if hint is Any:  # hypothesis has no strategy for Any, even inside a generic
        return any_value()
    if hint in _BUILT_ELSEWHERE:
        return _BUILT_ELSEWHERE[hint]
    if origin in (Mapping, dict) and args:
        return st.dictionaries(from_hint(args[0]), from_hint(args[1]), max_size=3)
    if origin in (Iterable, list) and args:
        return st.lists(from_hint(args[0]), max_size=3)
    if origin is Callable:  # (not st.functions: a callback may be called on another thread)
        return st.sampled_from([_ignores, _returns_a_value, an_async_callback])
    if attrs.has(hint):  # a value object: built field by field, from its own hints
        fields = typing.get_type_hints(hint)
        return st.builds(hint, **{f.name: from_hint(fields[f.name]) for f in attrs.fields(hint)})
    try:
        strategy = st.from_type(hint)
        strategy.validate()
    except Exception:  # hypothesis refuses some hints (Callable[..., Any], protocols)
        return st.nothing()
    return strategy


def _ignores(*args: Any) -> None:
    return None


def _returns_a_value(*args: Any) -> Any:
    return args


async def an_async_callback(*args: Any) -> None:
    return None


def argument_values(
    parameter: inspect.Parameter, hint: Any, plausible: dict[str, st.SearchStrategy[Any]]
) -> st.SearchStrategy[Any]:
    """Any value at all, what the hint builds, and a plausible value."""
    options = [any_value(), from_hint(hint)]
    if parameter.name in plausible:
        options.append(plausible[parameter.name])
    elif parameter.name in FIELDS:
        options.append(in_range(FIELDS[parameter.name]))
    if parameter.default is not inspect.Parameter.empty:
        options.append(st.just(parameter.default))
    return st.one_of(options)


@attrs.frozen
class Arguments:
    """Keyword arguments drawn for a call, and which of them were drawn as any value at all."""

    kwargs: dict[str, Any]
    odd: frozenset[str]


@st.composite
def arguments(
    draw: st.DrawFn,
    call: Call,
    plausible: dict[str, st.SearchStrategy[Any]],
    focus: str | None = None,
) -> Arguments:
    """Keyword arguments for a call: one parameter (`focus`, or each in turn) given any value,
    the others now and then; a plausible value or the default otherwise; required ones always
    given."""
    hints = call.hints()
    kwargs: dict[str, Any] = {}
    odd_ones = set()
    parameters = call.parameters()
    if focus is None:
        focus = draw(st.sampled_from(sorted(parameters) or [""]))
    for name, parameter in parameters.items():
        required = parameter.default is inspect.Parameter.empty
        odd = name == focus or draw(st.integers(0, 5)) == 5
        if odd:
            odd_ones.add(name)
            kwargs[name] = draw(argument_values(parameter, hints.get(name, Any), plausible))
        elif name in plausible:
            kwargs[name] = draw(plausible[name])
        elif required and name in FIELDS:
            kwargs[name] = draw(in_range(FIELDS[name]))
        elif required:
            odd_ones.add(name)
            kwargs[name] = draw(argument_values(parameter, hints.get(name, Any), plausible))
    return Arguments(kwargs, frozenset(odd_ones))
