"""The docs as a whole: README short and its links whole, every option the docs name real, the
site built offline and readable offline."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from novita_flux._cli._main import build_parser
from scripts.docs_cli import subcommands
from tests.docs.runner import DOCUMENTS, ROOT

README = ROOT / "README.md"
# Options the docs give to other programs (schemathesis, pytest, git, make's recipes, curl, jq).
OTHER_PROGRAMS = {
    "--header", "--checks", "--mode", "--url", "--max-examples", "--no-color", "--examples",
    "--check", "--release", "--root", "--full-trace", "--randomly-seed", "--cached", "--others",
    "--exclude-standard", "--quiet", "--disable-pip-version-check", "--upgrade", "--strict",
    "--isolated", "--deselect", "--ignore", "--max-children",
}  # fmt: skip


def test_readme_is_short() -> None:
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 200


@pytest.mark.parametrize("path", [README, ROOT / "CONTRIBUTING.md"], ids=lambda path: path.name)
def test_every_relative_link_leads_to_a_file(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    relative = [link for link in links if not re.match(r"[a-z]+:", link)]
    assert relative or path.name != "README.md"  # README links into the docs
    for link in relative:
        assert (path.parent / link).is_file(), f"{path.name}: {link} is not a file"


def test_every_option_the_docs_name_is_an_option_of_a_command() -> None:
    parser = build_parser()
    known = {flag for action in parser._actions for flag in action.option_strings}
    for command in subcommands(parser).values():
        known |= {flag for action in command._actions for flag in action.option_strings}
    for path in DOCUMENTS:
        text = path.read_text(encoding="utf-8")
        named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*[a-z]", text))
        unknown = named - known - OTHER_PROGRAMS
        assert not unknown, f"{path.relative_to(ROOT)} names options no command has: {unknown}"


def test_the_verify_page_names_every_option_of_verify() -> None:
    page = (ROOT / "docs" / "verify.md").read_text(encoding="utf-8")
    verify = subcommands(build_parser())["verify"]
    for action in verify._actions:
        if action.option_strings and "--help" not in action.option_strings:
            assert action.option_strings[-1] in page, action.option_strings


def test_schemathesis_is_in_no_extra_a_user_installs() -> None:
    # The testing page tells users to install it themselves: true while no extra brings it.
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for name, packages in extras["optional-dependencies"].items():
        if name in ("testing", "mcp"):
            assert not any(package.startswith("schemathesis") for package in packages)
    assert not any(package.startswith("schemathesis") for package in extras["dependencies"])


@pytest.mark.slow
def test_the_site_builds_offline_and_reads_offline(tmp_path: Path) -> None:
    # The build with the network cut off inside its own process (the hook), then every page
    # checked for anything a browser would fetch from elsewhere (fonts, scripts, styles).
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(site)],
        cwd=ROOT,
        env={**_environment(), "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    pages = list(site.rglob("*.html"))
    assert len(pages) > 20
    for page in pages:
        html = page.read_text(encoding="utf-8")
        fetched = re.findall(r'<(?:link|script|img)[^>]+(?:href|src)="(https?://[^"]+)"', html)
        assert not fetched, f"{page.relative_to(site)} fetches {fetched}"
    reference = (site / "cli" / "reference" / "index.html").read_text(encoding="utf-8")
    assert 'id="verify-record"' in reference
    assert 'id="batch-resend-unknown"' in reference


def test_the_build_hook_cuts_the_network_off() -> None:
    probe = (
        "import socket, scripts.mkdocs_hooks as hooks\n"
        "hooks.on_startup(command='build', dirty=False)\n"
        "try:\n"
        "    socket.create_connection(('127.0.0.1', 9), timeout=1)\n"
        "except OSError as error:\n"
        "    assert 'offline' in str(error), error\n"
        "else:\n"
        "    raise SystemExit('a connection was made')\n"
    )
    subprocess.run([sys.executable, "-c", probe], cwd=ROOT, check=True, timeout=60)


def _environment() -> dict[str, str]:
    import os

    return {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
