"""NOVITA_API_KEY and NOVITA_BASE_URL with odd values, as a shell could set them: both clients
and the CLI end with a NovitaError or a documented status in one line, send nothing when they
refuse, and never show the key.

Values are what an environment can hold: any text but NUL, a byte that is not UTF-8 arriving as
a lone surrogate (U+DC80 to U+DCFF), as Python reads os.environ.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from novita_flux import (
    AsyncFluxSchnell,
    FluxSchnell,
    MissingAPIKeyError,
    NovitaError,
    ValidationError,
)
from novita_flux.testing import ReferenceServer
from tests.fuzz.budget import fuzz
from tests.fuzz.conftest import Inputs, OutsideAttempts
from tests.fuzz.test_cli_argv import Terminal, Workspace, check_contract
from tests.fuzz.values import ODD_HOSTS, odd_links, terminal_text

FUZZ = fuzz()
SECRET = "sk-fuzz-0123456789abcdef"  # the part of every drawn key that must never be shown


def keys(server_key: str) -> st.SearchStrategy[str | None]:
    """The right key, with odd things around it, or odd keys with the secret inside."""
    around = st.sampled_from(["", " ", "\t", "\n", "\r\n", "\x00", "\udcff", "é", "\u200b", '"'])
    right = st.builds(lambda a, b: a + server_key + b, around, around)
    wrong = st.builds(lambda a, b: a + SECRET + b, around | terminal_text(8), around)
    return st.none() | st.just("") | right | wrong | terminal_text()


def base_urls(server_url: str) -> st.SearchStrategy[str | None]:
    """The server's URL and odd ones: paths, ports, hosts, schemes, userinfo, spaces."""
    port = server_url.rsplit(":", 1)[1]
    variants = [
        server_url,
        server_url + "/",
        server_url + "/v3beta",
        server_url + "?x=1",
        server_url + "#top",
        " " + server_url,
        server_url.upper(),
        f"http://localhost:{port}",
        f"http://[::1]:{port}",
        f"http://user:pw@127.0.0.1:{port}",
        "http://127.0.0.1:99999",
        "http://127.0.0.1:0",
        "https://127.0.0.1:1",
        "http://127.0.0.1:-1",
        "ftp://127.0.0.1",
        "127.0.0.1:8000",
        "",
    ]
    hosts = st.sampled_from(ODD_HOSTS).map(lambda host: f"https://{host}")
    return st.none() | st.sampled_from(variants) | hosts | odd_links() | terminal_text()


def set_environment(monkeypatch: pytest.MonkeyPatch, name: str, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv(name, raising=False)
        return
    try:
        os.fsencode(value)
    except UnicodeError:  # an environment cannot hold it: no shell could set it
        assume(False)
    assume("\x00" not in value)
    monkeypatch.setenv(name, value)


def check_secret_kept(said: str) -> None:
    assert SECRET not in said, said


@pytest.mark.parametrize("client", ["FluxSchnell", "AsyncFluxSchnell"])
@FUZZ
@given(data=st.data())
def test_odd_environment_values_give_a_novita_error_and_never_show_the_key(
    client: str,
    data: st.DataObject,
    novita_server: ReferenceServer,
    monkeypatch: pytest.MonkeyPatch,
    offline: OutsideAttempts,
    inputs: Inputs,
) -> None:
    key = data.draw(keys(novita_server.api_key), label="NOVITA_API_KEY")
    url = data.draw(base_urls(novita_server.url), label="NOVITA_BASE_URL")
    with monkeypatch.context() as patch:
        set_environment(patch, "NOVITA_API_KEY", key)
        set_environment(patch, "NOVITA_BASE_URL", url)
        novita_server.faults.reset()
        offline.clear()
        try:
            made = _generate(client)
        except (ValidationError, MissingAPIKeyError) as refused:
            check_secret_kept(f"{refused} {refused!r}")
            assert novita_server.faults.api_requests == 0
            assert not offline, offline
            outcome = type(refused).__name__
        except NovitaError as error:
            check_secret_kept(f"{error} {error!r}")
            outcome = type(error).__name__
        else:
            check_secret_kept(made)
            outcome = "generated"
    inputs.took(f"environment ({client})", outcome)


def _generate(client: str) -> str:
    if client == "FluxSchnell":
        with FluxSchnell(max_retries=0) as flux:
            return f"{flux!r} {flux.generate('a fox', width=64, height=64)!r}"

    async def generate() -> str:
        async with AsyncFluxSchnell(max_retries=0) as flux:
            return f"{flux!r} {await flux.generate('a fox', width=64, height=64)!r}"

    return asyncio.run(generate())


@FUZZ
@given(data=st.data())
def test_odd_environment_values_end_the_cli_in_one_line_without_the_key(
    data: st.DataObject,
    novita_server: ReferenceServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
    offline: OutsideAttempts,
    inputs: Inputs,
) -> None:
    workspace = Workspace(tmp_path, monkeypatch)
    key = data.draw(keys(novita_server.api_key), label="NOVITA_API_KEY")
    url = data.draw(base_urls(novita_server.url), label="NOVITA_BASE_URL")
    command = data.draw(
        st.sampled_from(
            [
                ["generate", "a fox", "--width", "64", "--height", "64", "--max-retries", "0"],
                ["generate", "a fox", "--dry-run"],
                ["verify", "--dry-run"],
            ]
        )
    )
    with monkeypatch.context() as patch:
        set_environment(patch, "NOVITA_API_KEY", key)
        set_environment(patch, "NOVITA_BASE_URL", url)
        novita_server.faults.reset()
        offline.clear()
        workspace.fresh()
        ran = Terminal(patch).run(command)
    check_contract(ran, novita_server, offline)
    check_secret_kept(ran.err + ran.out.decode("utf-8", "replace"))
    inputs.took(f"environment (cli {command[0]})", f"exit {ran.code}")


# --- found by this fuzz ---------------------------------------------------------------------


def test_a_call_that_never_left_is_not_reported_as_possibly_billed_on_the_next_run(
    novita_server: ReferenceServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
    offline: OutsideAttempts,
) -> None:
    """A base URL nothing listens on: the connection is refused, so the request never left. The
    next run of the same request into the same directory sends it (it used to be refused as
    "on the wire when an earlier run stopped, and may have been billed")."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NOVITA_API_KEY", novita_server.api_key)
    argv = ["generate", "a fox", "--seed", "5", "--width", "64", "--height", "64"]
    terminal = Terminal(monkeypatch)
    refused = terminal.run([*argv, "--base-url", "http://127.0.0.1:1", "--max-retries", "0"])
    assert refused.code == 1
    assert "ConnectError" in refused.errors[0]
    monkeypatch.setenv("NOVITA_BASE_URL", novita_server.url)
    again = terminal.run(argv)
    check_contract(again, novita_server, offline)
    assert (again.code, again.errors) == (0, [])
    assert len(novita_server.faults.billed) == 1


UNREACHABLE_BASE_URLS = [
    "https://" + "a" * 64 + ".example",
    "https://a..b",
    "https://xn--a",
    "https://exa\tmple.com",
    "http://127.0.0.1:99999",
    "http://127.0.0.1:-1",
]


@pytest.mark.parametrize("url", UNREACHABLE_BASE_URLS)
def test_a_base_url_no_request_can_go_to_is_refused_naming_it(
    url: str,
    novita_server: ReferenceServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
    offline: OutsideAttempts,
) -> None:
    """Found by this fuzz: each of these passed the base URL's check, then failed when the first
    request was built or sent, with a UnicodeError, idna's error, httpx's InvalidURL or an
    OverflowError from the socket layer."""
    for client in (FluxSchnell, AsyncFluxSchnell):
        with pytest.raises(ValidationError) as refused:
            client(api_key=novita_server.api_key, base_url=url)
        assert refused.value.field == "base_url"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NOVITA_API_KEY", novita_server.api_key)
    monkeypatch.setenv("NOVITA_BASE_URL", url)
    ran = Terminal(monkeypatch).run(["generate", "a fox", "--width", "64", "--height", "64"])
    check_contract(ran, novita_server, offline)
    assert ran.code == 2
    assert ran.errors[0].startswith("novita-flux: base_url: ")
