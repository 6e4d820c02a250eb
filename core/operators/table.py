"""Materializing a table from its topic, as code fused into a task's batch loop: each record
upserts (or, if ``None``, deletes) its key and is forwarded as the table's change. Null keys
cannot be stored and are skipped."""

from __future__ import annotations

from typing import Any


def table_source_code(cache: Any, tag: str, env: dict[str, Any]) -> list[str]:
    put = f"put{tag}"
    env[put] = cache.put
    return ["if k is None: continue", f"{put}(k, v)"]
