"""The provider documents in ../shared/seeds, read by the tests that check against them."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml

SEEDS = Path(__file__).resolve().parents[1] / ".." / "shared" / "seeds"
FENCE = re.compile(r"^```yaml\n(.*?)^```$", re.DOTALL | re.MULTILINE)


@cache
def openapi(seed_prefix: str) -> dict[str, Any]:
    """The OpenAPI document embedded in the seed file whose name starts with the prefix."""
    [path] = SEEDS.glob(f"{seed_prefix}_*.txt")
    match = FENCE.search(path.read_text())
    assert match, f"no YAML block in {path.name}"
    document: dict[str, Any] = yaml.safe_load(match.group(1))
    return document


def required_fields(seed_prefix: str, component: str) -> list[str]:
    return list(openapi(seed_prefix)["components"]["schemas"][component]["required"])
