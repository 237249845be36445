"""The bundled examples run: the custom-pipeline example completes a call offline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_custom_pipeline_example_runs_a_call_with_the_inserted_stage() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "custom_pipeline.py")],
        capture_output=True, text=True, timeout=120, cwd=ROOT / "examples",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "stt → transcript_logger → user_context" in result.stdout
    assert "[custom stage] caller said: What are your opening hours?" in result.stdout
    assert "agent replied: We are open from nine to five." in result.stdout


def test_quickstart_example_is_the_spec_api_and_compiles() -> None:
    source = (ROOT / "examples" / "quickstart.py").read_text()
    compile(source, "quickstart.py", "exec")
    assert "from patter import Patter" in source


def test_the_offline_demo_prints_the_whole_conversation() -> None:
    result = subprocess.run(
        [sys.executable, "-P", "-m", "patter.demo"],
        capture_output=True, text=True, timeout=180, cwd="/",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "agent │ This call is with an AI assistant" in out
    assert "caller │ Hi I would like to book a table for two tonight." in out
    assert "agent │ Done: a table for two at eight tonight." in out
    assert "caller │ [DTMF: 1]" in out
    assert "call ended by caller" in out
