"""`make generate` is reproducible, drift is caught, and the wheel ships both packages."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import generate  # noqa: E402


def test_a_spec_change_without_regeneration_is_reported_as_drift(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    text = generate.SPEC.read_text(encoding="utf-8")
    marker = "        image_num:\n"
    assert marker in text
    spec.write_text(
        text.replace(marker, "        drift_probe_field:\n          type: number\n" + marker, 1),
        encoding="utf-8",
    )
    fresh = tmp_path / generate.PACKAGE
    generate.generate_into(fresh, spec)
    changes = "".join(generate.diff(generate.tree(fresh), generate.tree(generate.TARGET)))
    assert "drift_probe_field" in changes
    assert "models/flux_1_schnell_request.py" in changes


def test_generated_package_is_typed_and_carries_the_spec() -> None:
    assert (generate.TARGET / "py.typed").is_file()
    assert (generate.TARGET / "openapi.json").is_file()


@pytest.mark.slow
def test_wheel_ships_both_packages_and_the_command(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
    )
    (wheel,) = tmp_path.glob("novita_flux-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "novita-flux = novita_flux._cli:main" in archive.read(entry_points).decode()
    for required in (
        "novita_flux/__init__.py",
        "novita_flux/py.typed",
        "novita_flux_api/__init__.py",
        "novita_flux_api/py.typed",
        "novita_flux_api/openapi.json",
    ):
        assert required in names, required
    assert not any(name.startswith(("generated/", "overlay/", "tests/")) for name in names)
