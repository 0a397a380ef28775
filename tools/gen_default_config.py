#!/usr/bin/env python
"""Regenerate config/default.yaml from the schema: every field, its default and its description.

    python tools/gen_default_config.py          # tests/config checks the file matches the schema
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

HEADER = [
    "# facestream configuration: every setting, with its default and what it does.",
    "# Pass your own file with `facestream run --config FILE`; keys you leave out keep these defaults.",
    "# Unknown keys and out-of-range values are rejected with the file's line number.",
    "",
]


def render(model: BaseModel, indent: int = 0) -> list[str]:
    lines: list[str] = []
    pad = "  " * indent
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            lines.append(f"{pad}{name}:")
            lines += render(value, indent + 1)
            continue
        if field.description:
            lines.append(f"{pad}# {field.description}")
        if value is None:
            text = "null"
        elif isinstance(value, bool):
            text = str(value).lower()
        elif isinstance(value, str):
            text = value
        else:
            text = json.dumps(value)
        lines.append(f"{pad}{name}: {text}")
    return lines


def main() -> int:
    from stream.config.schema import AppConfig

    (REPO / "config" / "default.yaml").write_text("\n".join(HEADER + render(AppConfig())) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
