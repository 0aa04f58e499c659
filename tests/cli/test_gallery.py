"""The gallery page: written by `batch` and `gallery`, self-contained, escaped, and checked in a
real browser (headless Chromium) for what it renders, not only for what it says."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from novita_flux._cli import main
from novita_flux.testing import ReferenceServer

HOSTILE = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def gallery_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A batch of three sizes, one hostile prompt and one refused line, run through the CLI."""
    root = tmp_path_factory.mktemp("gallery")
    lines = [
        {"prompt": "refused", "width": 64, "height": 64, "seed": 3},  # the first sent: refused
        {"prompt": "a red fox", "width": 96, "height": 64, "seed": 1},
        {"prompt": HOSTILE, "width": 64, "height": 128, "seed": 2, "image_num": 2},
        {"prompt": "夕焼けの富士山", "width": 128, "height": 96, "seed": 4},
    ]
    source = root / "in.jsonl"
    source.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
    with ReferenceServer() as server:
        server.faults.fail_next(1, reason="ILLEGAL_PROMPT", message="<b>not allowed</b>")
        environment = {"NOVITA_API_KEY": server.api_key, "NOVITA_BASE_URL": server.url}
        saved = {name: os.environ.get(name) for name in environment}
        os.environ.update(environment)
        try:
            code = main(["batch", str(source), "--out", str(root / "out"), "--concurrency", "1",
                         "--images-per-minute", "0"])  # fmt: skip
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
    assert code == 1  # the refused line
    return root / "out"


def test_batch_writes_a_self_contained_page_with_everything_escaped(gallery_dir: Path) -> None:
    page = (gallery_dir / "index.html").read_text(encoding="utf-8")
    assert "<script" not in page.lower()  # no script of ours, and none from a prompt
    assert html.escape(HOSTILE, quote=True) in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing from a network
    assert page.count('loading="lazy"') == 4
    assert "refused" in page
    assert "&lt;b&gt;not allowed&lt;/b&gt;" in page  # the server's message, as text
    assert "4 image(s)" in page
    assert "1 failed" in page


def test_generate_writes_the_page_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["generate", "x", "--width", "64", "--height", "64", "--mock", "--gallery"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    assert "gallery: " in capsys.readouterr().err
    assert "64x64" in (tmp_path / "index.html").read_text()


LONG = "a tiger eye, macro, " * 51 + "end"  # 1023 characters
REVERSING = "a fox \u202ereversed after this\u202c and a cat"


@pytest.fixture(scope="module")
def captions_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three images of one size: a short prompt, the longest one, and one with a bidi override."""
    root = tmp_path_factory.mktemp("captions")
    for prompt in ("a fox", LONG, REVERSING):
        argv = ["generate", prompt, "--width", "64", "--height", "64", "--mock", "-q"]
        assert main([*argv, "--out", str(root), "--gallery"]) == 0
    return root


def test_a_long_prompt_is_cut_on_its_card_and_whole_in_its_title(captions_dir: Path) -> None:
    page = (captions_dir / "index.html").read_text(encoding="utf-8")
    captions = re.findall(r"<p class=prompt dir=\"auto\"(?: title=\"([^\"]*)\")?>([^<]*)</p>", page)
    assert len(captions) == 3
    shown = {html.unescape(text): html.unescape(title) for title, text in captions}
    long_shown = next(text for text in shown if text.startswith("a tiger eye"))
    assert len(long_shown) == 140
    assert long_shown.endswith("...")
    assert shown[long_shown] == LONG  # the whole prompt, on hover
    assert shown["a fox"] == ""  # nothing cut, no title


def test_a_bidi_override_in_a_prompt_cannot_reorder_the_page(captions_dir: Path) -> None:
    page = (captions_dir / "index.html").read_text(encoding="utf-8")
    assert "\u202e" not in page
    assert "\u202c" not in page
    assert "a fox \ufffdreversed after this\ufffd and a cat" in page


def test_a_directory_whose_name_is_not_utf8_gets_its_page_and_its_path_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / os.fsdecode(b"caf\xe9")  # Latin-1, as an older system names it
    argv = ["generate", "x", "--width", "64", "--height", "64", "--mock", "-q"]
    assert main([*argv, "--out", str(directory)]) == 0
    capsys.readouterr()
    code = main(["gallery", str(directory)])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert out == f"{tmp_path}/caf\\udce9/index.html\n"  # what a UTF-8 stdout can carry
    page = (directory / "index.html").read_text(encoding="utf-8")
    assert "<h1>caf\ufffd</h1>" in page
    (image,) = directory.glob("*.png")
    assert f'src="{image.name}"' in page
    assert main(["gallery", str(directory), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"gallery": str(directory / "index.html")}


def find_browser() -> str | None:
    chosen = os.environ.get("CHROMIUM_BIN")
    if chosen:
        return chosen if os.access(chosen, os.X_OK) else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if found := shutil.which(name):
            return found
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = find_browser()
    if executable is None:
        pytest.skip("no Chromium found (apt-get install chromium, or set CHROMIUM_BIN); .ci/run "
                    "installs it")  # fmt: skip
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, args=BROWSER_FLAGS, timeout=60_000
        )
        yield launched
        launched.close()


def render(browser: Any, page_path: Path) -> dict[str, Any]:
    """Load the page from disk, scroll every lazy image in, and report what the browser did."""
    context = browser.new_context(viewport={"width": 800, "height": 500})
    page = context.new_page()
    page.set_default_timeout(20_000)
    seen: dict[str, Any] = {"console": [], "errors": [], "failed": []}
    page.on("console", lambda message: seen["console"].append((message.type, message.text)))
    page.on("pageerror", lambda error: seen["errors"].append(str(error)))
    page.on("requestfailed", lambda request: seen["failed"].append(request.url))
    page.on("dialog", lambda dialog: dialog.dismiss())
    try:
        page.goto(page_path.as_uri(), wait_until="load")
        for image in page.locator("img").all():
            image.scroll_into_view_if_needed()
        page.wait_for_function("Array.from(document.images).every(image => image.complete)")
        seen["images"] = page.evaluate(
            "Array.from(document.images, i => [decodeURIComponent(i.getAttribute('src')),"
            " i.naturalWidth, i.naturalHeight])"
        )
        seen["captions"] = page.locator("figcaption .prompt").all_text_contents()
        seen["table"] = page.locator("table").inner_text() if page.locator("table").count() else ""
        seen["xss"] = page.evaluate("window.__xss === undefined ? null : window.__xss")
    finally:
        context.close()
    return seen


@pytest.mark.slow
def test_the_page_renders_every_image_at_its_size_in_a_real_browser(
    browser: Any, gallery_dir: Path
) -> None:
    seen = render(browser, gallery_dir / "index.html")
    assert seen["errors"] == []
    assert [text for kind, text in seen["console"] if kind == "error"] == []
    assert seen["failed"] == []
    sizes = {}
    for name, width, height in seen["images"]:
        sidecar = json.loads((gallery_dir / f"{name}.json").read_text())
        sizes[name] = (width, height)
        assert (width, height) == (sidecar["request"]["width"], sidecar["request"]["height"])
    assert sorted(sizes.values()) == [(64, 128), (64, 128), (96, 64), (128, 96)]
    assert seen["captions"].count(HOSTILE) == 2  # shown as the text it is
    assert "夕焼けの富士山" in seen["captions"]
    assert seen["xss"] is None  # and never run
    assert "refused" in seen["table"]
    assert "<b>not allowed</b>" in seen["table"]


@pytest.mark.slow
def test_every_card_is_about_as_tall_as_the_others_and_reads_in_order(
    browser: Any, captions_dir: Path
) -> None:
    context = browser.new_context(viewport={"width": 800, "height": 2000})
    page = context.new_page()
    try:
        page.goto((captions_dir / "index.html").as_uri(), wait_until="load")
        heights = page.evaluate(  # what each card needs (a grid row stretches them all)
            "Array.from(document.querySelectorAll('figure'), f => Array.from(f.children)"
            ".reduce((sum, child) => sum + child.getBoundingClientRect().height, 0))"
        )
        captions = page.locator("figcaption .prompt").all_inner_texts()
    finally:
        context.close()
    assert len(heights) == 3
    assert max(heights) < 1.5 * min(heights), heights  # a 1024-character prompt: 3 times
    assert "a fox \ufffdreversed after this\ufffd and a cat" in captions


@pytest.mark.slow
def test_the_browser_check_would_see_a_broken_page(
    browser: Any, gallery_dir: Path, tmp_path: Path
) -> None:
    for item in gallery_dir.iterdir():
        if item.is_file():
            shutil.copy(item, tmp_path / item.name)
    victim = next(tmp_path.glob("a-red-fox*.png"))
    victim.write_bytes(b"<html>403 Forbidden</html>")  # not an image at all
    page = tmp_path / "index.html"
    page.write_text(page.read_text().replace("</main>", f"</main>{HOSTILE}"))  # unescaped
    seen = render(browser, page)
    assert seen["xss"] is not None
    assert (victim.name, 0, 0) in [tuple(image) for image in seen["images"]]
