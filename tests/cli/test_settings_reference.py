"""The README's configuration reference names every setting the code reads."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from charterflow.settings_reference import rows, table

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_has_a_description_and_a_readme_row() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [env for env, _, _ in rows() if f"`{env}`" not in readme]
    assert not missing, f"README.md's configuration reference lacks {missing}: paste `charterflow settings`"
    assert all(text for _, _, text in rows())


def test_the_table_is_markdown_and_names_no_secret_value(monkeypatch) -> None:
    monkeypatch.setenv("CHARTERFLOW_DISCORD_TOKEN", "sbx.not-to-be-printed")
    text = table()
    lines = text.splitlines()
    assert lines[0] == "| setting | default | what it does |"
    assert all(re.fullmatch(r"\| `[A-Z0-9_]+` \| .+ \| .+ \|", line) for line in lines[2:])
    assert "not-to-be-printed" not in text


def test_the_cli_prints_it() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "charterflow.cli", "settings"], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr
    assert "`CHARTERFLOW_GATEWAY_PORT` | `8080`" in out.stdout
