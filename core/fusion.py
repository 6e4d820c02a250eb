"""Turn a sub-topology into batch closures for one task.

Each maximal chain of steps (the source's decoding at its head, stateless steps, keyed
aggregations and table materializations through the write-back cache, a sink's encoding at its
tail) is compiled into ONE generated Python function over the batch::

    for kb, vb, ts, h, _p, _o in batch:      # source: decode once
        k = kb; v = vd(vb) if vb is not None else None
        if not f1(k, v): continue            # filter
        v = f2(v)                            # map_values
        append((k, ve(v), ts, h))            # sink: encode once

so per record only the user's functions and cache lookups run, plus one tuple append.
Processors and splits take the whole batch and pass their output list to their children.
Errors raised inside a generated loop are mapped back to the step (and, at a source, the
partition and offset) that failed.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from core.errors import FlowsError, ProcessingError
from core.operators.aggregate import aggregate_code
from core.operators.processor import make_process
from core.operators.registry import ONE_INPUT, TWO_INPUT
from core.operators.table import table_source_code

if TYPE_CHECKING:
    from core.compiler import PhysNode
    from core.task import Task

Batch = list[Any]
Push = Callable[[Batch], None]

_HEADS = frozenset({"source", "repartition_source"})
_INNER = frozenset(
    {
        "filter",
        "filter_not",
        "map",
        "map_values",
        "flat_map",
        "flat_map_values",
        "select_key",
        "peek",
        "foreach",
        "branch",
        "merge",
        "table_filter",
        "table_filter_not",
        "table_map_values",
        "to_stream",
        "sink",
        "repartition_sink",
        "aggregate",
        "table_source",
        "table_materialize",
    }
)
_TERMINAL = frozenset({"sink", "repartition_sink", "foreach"})
_counter = itertools.count()


def build(task: Task) -> dict[str, Push]:
    """Return ``topic -> push(batch)`` for the task's source topics."""
    nodes = {n.name: n for n in task.sub.nodes}
    built: dict[str, Push] = {}
    sides: dict[str, dict[str, Push]] = {}

    def push_for(name: str, via: str = "") -> Push:
        if name in built:
            return built[name]
        node = nodes[name]
        role = node.role
        if role in TWO_INPUT:
            if name not in sides:
                kids = [push_for(c, name) for c in node.children]
                made = TWO_INPUT[role](task, node, kids)
                sides[name] = {p: _guard(task, node, f) for p, f in made.items()}
            return sides[name][via]
        if role in _HEADS or role in _INNER:
            chain = [node]
            while chain[-1].role not in _TERMINAL and len(chain[-1].children) == 1:
                child = nodes[chain[-1].children[0]]
                if len(child.parents) != 1 or child.role not in _INNER:
                    break
                chain.append(child)
            last = chain[-1]
            children = (
                [] if last.role in _TERMINAL else [push_for(c, last.name) for c in last.children]
            )
            fn = _fused(task, chain, children)
        elif role == "split":
            fn = _split(task, node, [push_for(c, name) for c in node.children])
        elif role == "process":
            kids = [push_for(c, name) for c in node.children]
            fn = _guard(task, node, make_process(task, node, kids))
        elif role in ONE_INPUT:
            kids = [push_for(c, name) for c in node.children]
            fn = _guard(task, node, ONE_INPUT[role](task, node, kids))
        else:  # pragma: no cover - compiler bug
            raise AssertionError(f"no runtime for step kind {role!r}")
        built[name] = fn
        return fn

    return {
        n.topic.name: push_for(n.name)
        for n in task.sub.nodes
        if n.kind == "source" and n.topic is not None
    }


def _fused(task: Task, chain: list[PhysNode], children: list[Push]) -> Push:
    env: dict[str, Any] = {}
    lines = ["def run(batch):", "    out = []", "    append = out.append"]
    owner: dict[int, PhysNode] = {}
    depth = 1
    head = chain[0]

    def emit(code: str, node: PhysNode) -> None:
        lines.append("    " * depth + code)
        owner[len(lines)] = node

    if head.role in _HEADS:
        assert head.topic is not None
        ks, vs = head.topic.key_serde, head.topic.value_serde
        assert ks is not None and vs is not None
        env["kd"], env["vd"] = ks.decode, vs.decode
        emit("for kb, vb, ts, h, _p, _o in batch:", head)
        depth = 2
        emit("k = kb" if ks.identity else "k = None if kb is None else kd(kb)", head)
        emit("v = vb" if vs.identity else "v = None if vb is None else vd(vb)", head)
        extractor = head.node.param("timestamp_extractor") or head.topic.timestamp_extractor
        if extractor is not None:
            env["tx"] = extractor
            env["newest"] = task.event_times.setdefault(head.topic.name, [-1])
            emit("ts = tx(k, v, ts)", head)
            emit("if ts > newest[0]: newest[0] = ts", head)
        rest = chain[1:]
    else:
        lines.append("    for k, v, ts, h in batch:")
        depth = 2
        rest = chain
    sink: PhysNode | None = None
    out_expr = "append((k, v, ts, h))"
    for i, node in enumerate(rest):
        f = f"f{i}"
        env[f] = node.node.fn
        role = node.role
        if role == "filter":
            emit(f"if not {f}(k, v): continue", node)
        elif role == "filter_not":
            emit(f"if {f}(k, v): continue", node)
        elif role == "map":
            emit(f"k, v = {f}(k, v)", node)
        elif role == "map_values":
            emit(f"v = {f}(v)", node)
        elif role == "flat_map":
            emit(f"for k, v in {f}(k, v):", node)
            depth += 1
        elif role == "flat_map_values":
            emit(f"for v in {f}(v):", node)
            depth += 1
        elif role == "select_key":
            emit(f"k = {f}(k, v)", node)
        elif role in ("peek", "foreach"):
            emit(f"{f}(k, v)", node)
            if role == "foreach":
                out_expr = ""
        elif role == "table_filter":
            emit(f"if v is not None and not {f}(k, v): v = None", node)
        elif role == "table_filter_not":
            emit(f"if v is not None and {f}(k, v): v = None", node)
        elif role == "table_map_values":
            emit(f"if v is not None: v = {f}(v)", node)
        elif role == "aggregate":
            for line in aggregate_code(node.node, task.caches[node.stores[0]], str(i), env):
                emit(line, node)
        elif role in ("table_source", "table_materialize"):
            for line in table_source_code(task.caches[node.stores[0]], str(i), env):
                emit(line, node)
        elif role in ("sink", "repartition_sink"):
            sink = node
            assert node.topic is not None
            ks, vs = node.topic.key_serde, node.topic.value_serde
            assert ks is not None and vs is not None
            env["ke"], env["ve"] = ks.encode, vs.encode
            kx = "k" if ks.identity else "(None if k is None else ke(k))"
            vx = "v" if vs.identity else "(None if v is None else ve(v))"
            out_expr = f"append(({kx}, {vx}, ts, h))"
        # branch, merge, to_stream, repartition_source: pass-through
    if out_expr and (children or sink is not None):
        emit(out_expr, chain[-1])
    lines.append("    return out")
    filename = f"<flows task {task.id} chain {chain[0].name} #{next(_counter)}>"
    source = "\n".join(lines) + "\n"
    exec(compile(source, filename, "exec"), env)
    task.generated[chain[0].name] = source
    run: Callable[[Batch], Batch] = env["run"]

    def fail(exc: Exception) -> ProcessingError:
        node, where = _locate(exc.__traceback__, filename, owner, chain[0])
        return _error(task, node, exc, where)

    if sink is not None:
        send = task.collector.send
        topic = sink.topic.name if sink.topic else ""

        def push_sink(batch: Batch) -> None:
            try:
                out = run(batch)
            except FlowsError:
                raise
            except Exception as exc:
                raise fail(exc) from exc
            if out:
                send(topic, out, None)

        return push_sink

    def push(batch: Batch) -> None:
        try:
            out = run(batch)
        except FlowsError:
            raise
        except Exception as exc:
            raise fail(exc) from exc
        if out:
            for child in children:
                child(out)

    return push


def _locate(
    tb: TracebackType | None, filename: str, owner: dict[int, PhysNode], default: PhysNode
) -> tuple[PhysNode, str]:
    node, where = default, ""
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_filename == filename:
            node = owner.get(tb.tb_lineno, default)
            loc = frame.f_locals
            if "_o" in loc:
                where = f" (partition {loc['_p']}, offset {loc['_o']})"
        tb = tb.tb_next
    return node, where


def _error(task: Task, node: PhysNode, exc: Exception, where: str = "") -> ProcessingError:
    fn = node.node.fn2 if node.role.endswith("aggregate") else node.node.fn
    what = ""
    if node.role in ("source", "repartition_source") and node.topic is not None:
        what = f" decoding a record of topic {node.topic.name!r}{where} (check the topic's serdes)"
    elif node.role in ("sink", "repartition_sink") and node.topic is not None:
        what = f" encoding a record for topic {node.topic.name!r} (check the topic's serdes)"
    elif fn is not None:
        what = f" in {getattr(fn, '__qualname__', repr(fn))}{where}"
    return ProcessingError(
        f"step {node.name!r} failed{what} in task {task.id}: {type(exc).__name__}: {exc}",
        step=node.name,
        task=task.id,
    )


def _guard(task: Task, node: PhysNode, fn: Push) -> Push:
    def guarded(batch: Batch) -> None:
        try:
            fn(batch)
        except FlowsError:
            raise
        except Exception as exc:
            raise _error(task, node, exc) from exc

    return guarded


def _split(task: Task, node: PhysNode, children: list[Push]) -> Push:
    preds = node.node.param("predicates")
    indexed = list(enumerate(preds))

    def push(batch: Batch) -> None:
        outs: list[Batch] = [[] for _ in children]
        try:
            for rec in batch:
                k, v = rec[0], rec[1]
                for i, pred in indexed:
                    if pred is None or pred(k, v):
                        outs[i].append(rec)
                        break
        except Exception as exc:
            raise _error(task, node, exc) from exc
        for child, out in zip(children, outs, strict=True):
            if out:
                child(out)

    return push
