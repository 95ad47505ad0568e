"""`icgen ask`: the raw answer with control characters escaped, then the parse/validate report."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from icgen.cli import main
from icgen.core.design import EXAMPLE_DESIGN
from icgen.core.paths import DEFAULT_MODEL_DIR, MODELS_DIR
from icgen.sizing.ask import escaped


def test_control_characters_are_escaped_and_newlines_kept():
    assert escaped("R0=3k\x1b[31m C0=1p\tL1=\x00622n\nVIN=605m\r") == "R0=3k\\x1b[31m C0=1p\\tL1=\\x00622n\nVIN=605m\\r"
    assert escaped("µ Ω plain") == "µ Ω plain"


@pytest.mark.skipif(not (DEFAULT_MODEL_DIR / "adapter").is_dir(), reason="no shipped model")
def test_ask_prints_prompt_raw_answer_and_report(tmp_path):
    out = CliRunner().invoke(main, ["ask", "--gain", "40dB", "--pm", "55", "--no-simulate"])
    assert out.exit_code in (0, 1), out.output
    assert "prompt (" in out.output and "raw answer:" in out.output
    assert ("parsed design" in out.output) or ("INVALID" in out.output)
    start = tmp_path / "start.json"
    start.write_text(json.dumps(EXAMPLE_DESIGN.to_dict()))
    out = CliRunner().invoke(main, ["ask", "--gain", "40dB", "--start", str(start), "--no-simulate"])
    assert "prompt (fix format; start: your design)" in out.output  # the shipped model reads a start
    assert "from R0=3k C0=1p L1=622n" in out.output
    compact = MODELS_DIR / "smollm2-135m-cpu"
    out = CliRunner().invoke(main, ["ask", "--gain", "40dB", "--start", str(start), "--no-simulate", "--model",
                                    str(compact)])
    assert "start: not used by the compact format" in out.output


@pytest.mark.parametrize("args, says", [
    (["--gain", "40", "--start", "/nonexistent.json"], "--start: /nonexistent.json: no such file"),
    (["--gain", "40", "--model", "/tmp"], "--model:"),
    (["--slew", "fast"], "--slew"),
])
def test_ask_refuses_bad_input_in_one_line(args, says):
    out = CliRunner().invoke(main, ["ask", *args])
    assert out.exit_code == 2 and says in out.output and "Traceback" not in out.output, out.output
