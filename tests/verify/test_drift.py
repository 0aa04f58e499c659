"""Servers that drift from the spec in one way each: `verify` names every drift at its JSON path
or probe, and exits 1."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from novita_flux._cli import main
from novita_flux.verify import Finding, Report, run
from tests import drift
from tests.drift import DriftingServer

KEY = "sk-drift-fedcba9876543210-do-not-leak"


def verify_against(server: DriftingServer, **options: object) -> Report:
    return run(api_key=KEY, base_url=server.url, images_per_minute=0, **options)  # type: ignore[arg-type]


@pytest.fixture
def serve() -> Iterator[object]:
    servers: list[DriftingServer] = []

    def start(**changes: object) -> DriftingServer:
        server = DriftingServer(api_key=KEY, **changes).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def deviations(report: Report, probe_id: str) -> dict[str, Finding]:
    (result,) = [result for result in report.results if result.probe.id == probe_id]
    return {finding.where: finding for finding in result.of_kind("deviates")}


def test_a_renamed_response_field_is_reported_at_its_path(serve) -> None:
    report = verify_against(serve(answer=drift.renamed_image_url), groups=["bounds"])
    assert report.exit_status == 1
    found = deviations(report, "bounds.cheapest")
    assert found["$.images[0].image_url"].got == "missing"
    assert all(result.verdict == "deviates" for result in report.results)


def test_a_ttl_that_is_a_float_string_is_reported_at_its_path(serve) -> None:
    report = verify_against(serve(answer=drift.float_string_ttl), groups=["bounds", "types"])
    assert report.exit_status == 1
    found = deviations(report, "bounds.image_num.max")
    assert found["$.images[7].image_url_ttl"].got == "'3600.0'"
    assert "string matching" in found["$.images[7].image_url_ttl"].spec


def test_an_undocumented_reason_is_reported_at_its_path(serve) -> None:
    report = verify_against(serve(answer=drift.undocumented_reason), groups=["invalid", "auth"])
    assert report.exit_status == 1
    found = deviations(report, "invalid.width.above_max")
    assert found["$.reason"].got == "'PARAMETER_INVALID'"
    assert "INVALID_REQUEST_BODY" in found["$.reason"].spec
    assert all(
        result.verdict != "deviates" for result in report.results if result.probe.group == "auth"
    )


def test_a_400_for_a_valid_request_is_reported_on_its_probe(serve) -> None:
    report = verify_against(serve(answer_first=drift.refuses_most_steps), groups=["bounds"])
    assert report.exit_status == 1
    assert [result.probe.id for result in report.deviating] == ["bounds.steps.max"]
    status = deviations(report, "bounds.steps.max")["status"]
    assert status.spec == "200 with the images"
    assert status.got.startswith("400 INVALID_REQUEST_BODY")


def test_an_image_of_another_size_than_asked_is_reported_on_each_image(serve) -> None:
    report = verify_against(serve(image=drift.wider_images), groups=["bounds"])
    assert report.exit_status == 1
    size = deviations(report, "bounds.width.max")["image 0: size"]
    assert size.spec.startswith("2048x64")
    assert size.got == "4096x64"
    assert "image 7: size" in deviations(report, "bounds.image_num.max")


def test_an_ignored_image_type_field_is_reported_and_the_question_answered(serve) -> None:
    report = verify_against(serve(request=drift.ignores_image_type), groups=["types", "questions"])
    assert report.exit_status == 1
    found = deviations(report, "types.jpeg")
    assert found["$.images[0].image_type"].got == "'png'"
    assert found["image 0: type"].got == "png"
    names = {f.where: f.got for r, f in report.answers() if r.probe.check == "format_field"}
    assert names["response_image_type"].startswith("ignored: jpeg asked, PNG bytes came back")


def test_the_cli_exits_1_when_the_api_deviated(
    serve, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = serve(answer=drift.float_string_ttl)
    monkeypatch.setenv("NOVITA_API_KEY", KEY)
    argv = ["verify", "--base-url", server.url, "--images-per-minute", "0", "--only", "bounds"]
    code = main(argv)
    out, _ = capsys.readouterr()
    assert code == 1
    assert "deviates   bounds.cheapest" in out
    assert "$.images[0].image_url_ttl: the spec says" in out
    assert out.rstrip().splitlines()[-1].startswith("verdict: the API deviated from the spec in")


def test_a_server_echoing_the_key_never_gets_it_into_the_report_or_a_recording(
    serve, tmp_path: Path
) -> None:
    server = serve(answer=drift.echoes_the_key)
    report = verify_against(server, groups=["bounds", "invalid"], record=tmp_path)
    assert report.exit_status == 0  # an extra field and a longer message are allowed
    echoed = [f for r in report.results for f in r.findings if "<API key>" in f.got]
    assert echoed  # the server did echo it, and the report shows where
    assert KEY not in report.text()
    assert KEY not in str(report.as_dict())
    files = list(tmp_path.iterdir())
    assert files
    for path in files:
        assert KEY.encode() not in path.read_bytes(), path.name


def test_an_image_host_quoting_the_signature_back_never_gets_it_into_a_recording(
    serve, tmp_path: Path
) -> None:
    server = serve(image_first=drift.quotes_the_signature)
    report = verify_against(server, groups=["types"], record=tmp_path)
    assert report.exit_status == 1
    download = deviations(report, "types.webp")["image 0: download"]
    assert download.got.startswith("403 '<Error><Code>SignatureDoesNotMatch")
    text = (tmp_path / "types.webp.yaml").read_text()
    assert "<SignatureProvided>REDACTED</SignatureProvided>" in text
    assert not re.search(r"signature=[0-9a-f]{16}", text)
