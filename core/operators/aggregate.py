"""Keyed aggregations (count / reduce / aggregate), as code fused into a task's batch loop.

Per record this is a dict lookup in the write-back cache, the user's function and a dict store:
values stay Python objects until the cache is flushed at commit. Records with a ``None`` key or
value are skipped, as in Kafka Streams. The aggregate becomes the record's value, so the steps
after it (``to_stream``, table filters, a sink) continue in the same loop.
"""

from __future__ import annotations

from typing import Any

from core.plan import Node


def aggregate_code(node: Node, cache: Any, tag: str, env: dict[str, Any]) -> list[str]:
    """Lines of the fused loop body for ``node``; binds its names in ``env`` under ``tag``."""
    get, put = f"get{tag}", f"put{tag}"
    env[get] = cache.get
    env[put] = cache.put
    lines = ["if k is None or v is None: continue"]
    if node.param("op") == "count":
        return [*lines, f"v = {get}(k)", "v = 1 if v is None else v + 1", f"{put}(k, v)"]
    init, add = f"init{tag}", f"add{tag}"
    env[init] = node.fn
    env[add] = node.fn2
    lines.append(f"agg = {get}(k)")
    if node.fn is not None:
        lines.append(f"if agg is None: agg = {init}()")
    return [*lines, f"v = {add}(k, v, agg)", f"{put}(k, v)"]
