"""A 200 with another number of images than `image_num` (issue 20): it was paid for, so whatever
it holds is kept and saved, and it is said aloud by the library, `generate`, `batch` and
`verify`; the spec bounds what a schema can (image_num's range) and says the rest in words."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import respx

from novita_flux import AsyncFluxSchnell, FluxSchnell, ResponseValidationError
from novita_flux._cli import main
from novita_flux._request import field_schema
from novita_flux._schema import compile_schema
from novita_flux._spec import GENERATE, response_schema
from novita_flux.testing import ReferenceServer
from novita_flux.verify import run as verify
from tests.support import API_URL, KEY, success_body

SMALL = {"prompt": "a fox", "width": 64, "height": 64, "seed": 3}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def said(err: str) -> list[str]:
    """The lines a command said as errors (progress and notes are plain)."""
    return [line for line in err.splitlines() if line.startswith("novita-flux:")]


# --- the spec ------------------------------------------------------------------------------------


def test_the_spec_bounds_images_by_image_num_s_range_and_says_the_rest_in_words() -> None:
    images = compile_schema(response_schema(GENERATE, 200))["properties"]["images"]
    image_num = field_schema("image_num")
    assert (images["minItems"], images["maxItems"]) == (image_num["minimum"], image_num["maximum"])
    assert "exactly the request's `image_num`" in images["description"]


# --- the library ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("asked", "answered"), [(2, 1), (3, 2), (1, 2), (8, 1)])
def test_the_client_keeps_an_answer_of_another_count_says_what_was_paid_for_and_warns(
    caplog: pytest.LogCaptureFixture, asked: int, answered: int
) -> None:
    with respx.mock as router, FluxSchnell(api_key=KEY, max_retries=0) as flux:
        router.post(API_URL).respond(200, json=success_body(answered, task_id="t-short"))
        with caplog.at_level(logging.WARNING, logger="novita_flux"):
            generation = flux.generate(**SMALL, image_num=asked)
    assert (len(generation.images), generation.images_paid_for) == (answered, asked)
    (record,) = [r for r in caplog.records if r.name == "novita_flux"]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        f"the API's answer (task t-short) holds {answered} image(s) for the {asked} paid for: a "
        "contract deviation; every image it holds is kept"
    )


@pytest.mark.anyio
async def test_the_async_client_keeps_and_warns_of_a_short_answer_too(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with respx.mock as router, caplog.at_level(logging.WARNING, logger="novita_flux"):
        router.post(API_URL).respond(200, json=success_body(1))
        async with AsyncFluxSchnell(api_key=KEY, max_retries=0) as flux:
            generation = await flux.generate(**SMALL, image_num=2)
    assert (len(generation.images), generation.images_paid_for) == (1, 2)
    assert "holds 1 image(s) for the 2 paid for" in caplog.text


def test_a_whole_answer_warns_of_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with respx.mock as router, FluxSchnell(api_key=KEY, max_retries=0) as flux:
        router.post(API_URL).respond(200, json=success_body(2))
        with caplog.at_level(logging.DEBUG, logger="novita_flux"):
            generation = flux.generate(**SMALL, image_num=2)
    assert generation.images_paid_for == len(generation.images) == 2
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_an_answer_with_no_image_breaks_the_spec_and_keeps_its_task(api: ReferenceServer) -> None:
    api.faults.short_answer_next(images=0)
    with (
        FluxSchnell(api_key=api.api_key, base_url=api.url) as flux,
        pytest.raises(ResponseValidationError) as raised,
    ):
        flux.generate(**SMALL, image_num=2)
    ((task_id, _),) = api.faults.billed
    assert raised.value.task_id == task_id
    assert raised.value.problem == "images: [] is not an array of 1 to 8 items"


# --- the reference server ------------------------------------------------------------------------


def test_the_reference_server_answers_image_num_images_unless_a_fault_asks(
    api: ReferenceServer,
) -> None:
    api.faults.short_answer_next(images=1)
    with FluxSchnell(api_key=api.api_key, base_url=api.url) as flux:
        counts = [len(flux.generate(**SMALL, image_num=3).images) for _ in range(2)]
    assert counts == [1, 3]
    assert [body["image_num"] for _, body in api.faults.billed] == [3, 3]  # billed as asked


@pytest.mark.parametrize("images", [-1, True, 1.5, "2"])
def test_short_answer_next_wants_a_count(api: ReferenceServer, images: Any) -> None:
    with pytest.raises(ValueError, match="images must be an integer >= 0"):
        api.faults.short_answer_next(images=images)
    assert api.faults.pending == 0


# --- novita-flux generate ------------------------------------------------------------------------


def generate(tmp_path: Path, image_num: int) -> list[str]:
    return [
        "generate", "a fox", "--width", "64", "--height", "64", "--seed", "3",
        "-n", str(image_num), "--out", str(tmp_path),
    ]  # fmt: skip


def test_generate_saves_a_short_answer_says_so_in_one_line_and_exits_1(
    capsys: pytest.CaptureFixture[str], api: ReferenceServer, tmp_path: Path
) -> None:
    api.faults.short_answer_next(images=1)
    code, out, err = run(capsys, *generate(tmp_path, 2))
    ((task_id, _),) = api.faults.billed
    assert code == 1
    assert len(list(tmp_path.glob("*.png"))) == 1  # what came is saved
    assert said(err) == [
        f"novita-flux: the API answered 1 image(s) for the 2 paid for (task {task_id}): a "
        f"contract deviation; what it holds is saved in {tmp_path}"
    ]
    assert out.endswith("$0.00001171875\n")  # the image's share of what was paid: half, not all
    assert list(tmp_path.glob(".novita-flux-call-*")) == []  # nothing left to finish


def test_generate_with_an_answer_of_no_image_exits_1_naming_the_task(
    capsys: pytest.CaptureFixture[str], api: ReferenceServer, tmp_path: Path
) -> None:
    api.faults.short_answer_next(images=0)
    code, _, err = run(capsys, *generate(tmp_path, 2))
    ((task_id, _),) = api.faults.billed
    assert code == 1
    (line,) = said(err)
    assert line.startswith("novita-flux: ResponseValidationError: ")
    assert f"likely billed (task {task_id};" in line
    assert list(tmp_path.glob("*.png")) == []


def test_generate_saves_what_a_contract_breaking_answer_links_to_and_exits_1(
    capsys: pytest.CaptureFixture[str], api: ReferenceServer, tmp_path: Path
) -> None:
    api.faults.malform_next(kind="unknown_image_type")  # "gif": read as the type asked for
    code, _, err = run(capsys, *generate(tmp_path, 2))
    ((task_id, _),) = api.faults.billed
    assert code == 1
    assert len(list(tmp_path.glob("*.png"))) == 2
    (line,) = said(err)
    assert f"(task {task_id}; 2 image link(s) kept on this error)" in line
    assert line.endswith(f"what it holds is saved in {tmp_path}")
    assert list(tmp_path.glob(".novita-flux-call-*")) == []


# --- novita-flux batch ---------------------------------------------------------------------------


def manifest(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_a_batch_line_answered_short_is_saved_marked_counted_and_the_batch_exits_1(
    capsys: pytest.CaptureFixture[str], api: ReferenceServer, tmp_path: Path
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(
        json.dumps(SMALL | {"image_num": 2}) + "\n" + json.dumps(SMALL | {"seed": 4}) + "\n"
    )
    out = tmp_path / "out"
    argv = ["batch", str(source), "--out", str(out), "--concurrency", "1"]
    argv += ["--images-per-minute", "0"]
    api.faults.short_answer_next(images=1)  # the first line's answer
    code, _, err = run(capsys, *argv)
    short, whole = manifest(out)
    assert code == 1
    assert (short["status"], len(short["files"]), len(short["images"])) == ("saved", 1, 1)
    assert short["error"] == {
        "type": "ShortAnswer",
        "message": "the API answered 1 image(s) for the 2 paid for: a contract deviation; every "
        "image it held is kept",
        "images_paid_for": 2,
        "images_answered": 1,
        "possibly_billed": True,
    }
    assert (whole["status"], len(whole["files"]), whole["error"]) == ("saved", 1, None)
    assert "1 answered with another number of images than paid for" in err
    assert said(err) == [
        "novita-flux: 1 request(s) were answered with another number of images than they paid "
        "for (a contract deviation): every image they hold is kept, and they are marked "
        f"ShortAnswer in {out / 'manifest.jsonl'}"
    ]
    # Said again on the next run, which pays for nothing.
    again, _, err = run(capsys, *argv)
    assert again == 1
    assert len(api.faults.billed) == 2
    assert "1 answered with another number of images than paid for" in err
    assert manifest(out)[0]["error"]["type"] == "ShortAnswer"


# --- novita-flux verify --------------------------------------------------------------------------


def test_verify_reports_an_answer_of_another_count_as_a_deviation(api: ReferenceServer) -> None:
    api.faults.short_answer_next(images=2)  # the first probe asks for one image
    report = verify(api_key=api.api_key, base_url=api.url, groups=["bounds"], images_per_minute=0)
    assert report.exit_status == 1
    first = report.results[0]
    assert first.verdict == "deviates"
    counted = [f for f in first.findings if f.where == "$.images"]
    assert [(f.kind, f.spec, f.got) for f in counted] == [
        ("deviates", "1 image(s) (image_num)", "2")
    ]
