#!/usr/bin/env python3
"""Copy into tests/data/ the few upstream files the tests read, so the suite needs nothing
outside the repository: the rulings text (the registry cross-check) and the official OpenAPI
documents of Discord and Discourse and Slack's Web API spec (the spec tests). Run it when the upstream copies change:

    python scripts/refresh-vendored.py [SOURCE]   # SOURCE: the folder holding charter/ and specs/

The JSON specs are re-serialised without indentation (same content, about half the size).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "tests" / "data"
# upstream path (relative to SOURCE) -> file name under tests/data
FILES = {
    "charter/RULINGS.md": "RULINGS.md",
    "specs/discord/openapi.json": "discord-openapi.json",
    "specs/discourse/openapi.json": "discourse-openapi.json",
    "specs/slack/slack_web_openapi_v2.json": "slack-openapi.json",
}


def refresh(source: Path, target: Path = TARGET) -> list[str]:
    """Copy every file of ``FILES`` from ``source``; returns one line per file written."""
    missing = [name for name in FILES if not (source / name).is_file()]
    if missing:
        raise SystemExit(f"error: not found under {source}: {', '.join(missing)}")
    target.mkdir(parents=True, exist_ok=True)
    lines = []
    for name, copy in FILES.items():
        text = (source / name).read_text(encoding="utf-8")
        if copy.endswith(".json"):
            text = json.dumps(json.loads(text), ensure_ascii=False, separators=(",", ":")) + "\n"
        written = target / copy
        written.write_text(text, encoding="utf-8")
        shown = written.relative_to(ROOT) if written.is_relative_to(ROOT) else written
        lines.append(f"{name} -> {shown} ({len(text.encode()) // 1024} KiB)")
    return lines


def main(argv: list[str]) -> None:
    source = Path(argv[0]) if argv else ROOT.parent / "shared"
    for line in refresh(source.resolve()):
        print(line)


if __name__ == "__main__":
    main(sys.argv[1:])
