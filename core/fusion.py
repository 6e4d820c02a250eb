"""Turn a sub-topology into batch closures for one task, in Kafka Streams' record order.

Each region of steps that can be fused (the source's decoding at its head, stateless steps,
splits and merges, keyed aggregations and table materializations through the write-back cache,
sinks' encoding) is compiled into ONE generated Python function over the batch::

    for kb, vb, ts, h, _p, _o in batch:      # source: decode once
        k = kb; v = vd(vb) if vb is not None else None
        if not f1(k, v): continue            # filter
        v = f2(v)                            # map_values
        append((k, ve(v), ts, h))            # sink: encode once

so per record only the user's functions and cache lookups run, plus one tuple append.

Record order. Kafka Streams hands each record depth-first through the whole graph before the
next one. Running a batch step by step ("chain by chain") gives the same order only while the
graph does not fan out and meet again. So a region is walked depth-first *per record*: at a
fan-out (``split()``, or several steps reading one stream) the generated loop runs each path for
the record before the next record; a step fed by several paths of the region (``merge``) is a
local function called from each path; sinks of one topic append to one list. Steps that run
on whole batches (processors, windowed aggregations, joins, suppression) are handed the
region's output after its loop, unless a path of the region can observe their effects in the
meantime (a shared sink topic, store or downstream step, see
:func:`core.compiler.observation_keys`): then they are called per record, inside the loop.
A linear chain therefore compiles to exactly the loop above, and only fan-outs whose paths
meet again pay for the per-record order.

Errors raised inside a generated loop are mapped back to the step (and, at a source, the
partition and offset) that failed.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from core.compiler import observation_keys
from core.errors import FlowsError, ProcessingError
from core.operators.aggregate import aggregate_code
from core.operators.processor import make_process
from core.operators.registry import ONE_INPUT, TWO_INPUT
from core.operators.table import table_source_code
from core.plan import STATELESS

if TYPE_CHECKING:
    from core.compiler import PhysNode
    from core.task import Task

Batch = list[Any]
Push = Callable[[Batch], None]

_HEADS = frozenset({"source", "repartition_source"})
_INNER = STATELESS | {
    "split",
    "sink",
    "repartition_sink",
    "aggregate",
    "table_source",
    "table_materialize",
}
_FUSED = _HEADS | _INNER
_TERMINAL = frozenset({"sink", "repartition_sink", "foreach"})
_ROUTING = frozenset({"fk_subscribe"})
"""Batch steps that send different records to different children (not a fan-out)."""
_SKIP_LINE = re.compile(r"^if (.*): continue$")
_counter = itertools.count()


def build(task: Task) -> dict[str, Push]:
    """Return ``topic -> push(batch)`` for the task's source topics."""
    b = _Builder(task)
    return {
        n.topic.name: b.push_for(n.name)
        for n in task.sub.nodes
        if n.kind == "source" and n.topic is not None
    }


class _Builder:
    """Builds (once each) the batch functions of one task's steps."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.nodes = {n.name: n for n in task.sub.nodes}
        self.own, self.reach = observation_keys(task.sub)
        writers = Counter(
            n.topic.name for n in task.sub.nodes if n.kind == "sink" and n.topic is not None
        )
        # A topic written by several sinks, or by a sink after a merge (which is compiled into
        # every region reaching the merge, and those may nest), gets ONE list in write order,
        # shared by every region of the task.
        shared = {t for t, c in writers.items() if c > 1}
        for n in task.sub.nodes:
            if len(n.parents) > 1:
                shared |= {k[6:] for k in self.reach[n.name] if k.startswith("topic:")}
        self.shared: dict[str, list[Any]] = {t: [] for t in sorted(shared)}
        self.built: dict[str, Push] = {}
        self.sides: dict[str, dict[str, Push]] = {}

    def clear_shared(self) -> None:
        for lst in self.shared.values():
            lst.clear()

    def push_for(self, name: str, via: str = "") -> Push:
        if name in self.built:
            return self.built[name]
        node = self.nodes[name]
        role = node.role
        if role in TWO_INPUT:
            if name not in self.sides:
                made = TWO_INPUT[role](self.task, node, self.kids(node))
                self.sides[name] = {
                    p: self.ordered(node, _guard(self.task, node, f)) for p, f in made.items()
                }
            return self.sides[name][via]
        if role in _FUSED:
            fn = _Region(self, name, virtual=False).compile()
        elif role == "process":
            made = make_process(self.task, node, self.kids(node))
            fn = self.ordered(node, _guard(self.task, node, made))
        elif role in ONE_INPUT:
            made = ONE_INPUT[role](self.task, node, self.kids(node))
            fn = self.ordered(node, _guard(self.task, node, made))
        else:  # pragma: no cover - compiler bug
            raise AssertionError(f"no runtime for step kind {role!r}")
        self.built[name] = fn
        return fn

    def kids(self, node: PhysNode) -> list[Push]:
        """The children of a batch step; several become one region walked depth-first."""
        if len(node.children) <= 1 or node.role in _ROUTING:
            return [self.push_for(c, node.name) for c in node.children]
        key = f"{node.name}\0out"
        if key not in self.built:
            self.built[key] = _Region(self, node.name, virtual=True).compile()
        return [self.built[key]]

    def ordered(self, node: PhysNode, fn: Push) -> Push:
        """Run ``fn`` record by record when its own state is observed downstream of it (then
        each output must be handled before the next input, as in Kafka Streams)."""
        own = self.own[node.name]
        if not own or not any(own & self.reach[c] for c in node.children):
            return fn

        def one_by_one(batch: Batch) -> None:
            if len(batch) == 1:
                fn(batch)
                return
            for rec in batch:
                fn([rec])

        return one_by_one


Line = tuple[int, str, "PhysNode | None"]


class _Region:
    """Generates the depth-first loop of one region; see the module docstring."""

    def __init__(self, b: _Builder, root: str, *, virtual: bool) -> None:
        self.b = b
        self.task = b.task
        self.nodes = b.nodes
        self.root = root
        self.virtual = virtual
        self.env: dict[str, Any] = {}
        self.buf: list[Line] = []
        self.funcs: dict[str, str] = {}
        self.func_bufs: list[list[Line]] = []
        self.outputs: list[tuple[str, Any, str]] = []  # ("send", topic | "call", push, list var)
        self.local_topics: dict[str, str] = {}
        self.flush: dict[str, list[Any]] = {}
        self.nested = False
        self.n = itertools.count()
        self.entries, self.conflict, self.ordered = self._scan()

    # -- analysis -------------------------------------------------------------------------------

    def _scan(self) -> tuple[Counter[str], set[str], set[str]]:
        """How often each fused step is entered in this region; the observation places
        reached from two different paths of it (where order between paths matters); and the
        fused steps after a merge that is such a place. A merge reached from outside the
        region too (through a batch step called per record) is compiled into both; whatever
        follows it must then run per record in both, or the two copies would interleave
        wrongly."""
        nodes, own, reach = self.nodes, self.b.own, self.b.reach
        entries: Counter[str] = Counter()
        sources: dict[str, set[str]] = {}
        seen: set[str] = set()
        todo: list[tuple[str, str | None]]
        if self.virtual:
            todo = [(c, self.root) for c in nodes[self.root].children]
        else:
            todo = [(self.root, None)]
        while todo:
            name, via = todo.pop()
            node = nodes[name]
            if node.role not in _FUSED:
                for key in reach[name]:
                    sources.setdefault(key, set()).add(f"{name}\0{via}")
                continue
            entries[name] += 1
            if name in seen:
                continue
            seen.add(name)
            for key in own[name]:
                sources.setdefault(key, set()).add(name)
            if node.role not in _TERMINAL:
                todo.extend((c, name) for c in node.children)
        conflict = {key for key, srcs in sources.items() if len(srcs) > 1}
        ordered: set[str] = set()
        stack = [n for n in seen if f"step:{n}" in conflict]
        while stack:
            name = stack.pop()
            if name in ordered:
                continue
            ordered.add(name)
            if nodes[name].role not in _TERMINAL:
                stack.extend(c for c in nodes[name].children if c in seen)
        return entries, conflict, ordered

    # -- emitting -------------------------------------------------------------------------------

    def emit(self, depth: int, code: str, node: PhysNode | None) -> None:
        self.buf.append((depth, code, node))

    def bind(self, obj: Any, prefix: str) -> str:
        name = f"{prefix}{next(self.n)}"
        self.env[name] = obj
        return name

    def local_list(self, kind: str, target: Any) -> str:
        i = len(self.outputs)
        var = "out" if i == 0 else f"out{i}"
        self.outputs.append((kind, target, var))
        return "append" if i == 0 else f"append{i}"

    def skip_if(self, cond: str, keep: str, node: PhysNode, d: int, tail: bool, skip: str) -> int:
        """Drop the record when ``cond``: with ``skip`` at the end of a path, else by nesting
        the rest of the path under ``if keep:`` (so sibling paths after it still run)."""
        if tail:
            self.emit(d, f"if {cond}: {skip}", node)
            return d
        self.emit(d, f"if {keep}:", node)
        return d + 1

    def step(self, name: str, d: int, tail: bool, skip: str) -> None:
        """Emit step ``name`` (the record is in ``k, v, ts, h``) and everything after it."""
        node = self.nodes[name]
        role = node.role
        fn = node.node.fn
        if role == "split":
            self.split(node, d, tail, skip)
            return
        if role in ("filter", "filter_not"):
            f = self.bind(fn, "f")
            yes, no = f"{f}(k, v)", f"not {f}(k, v)"
            d = (
                self.skip_if(no, yes, node, d, tail, skip)
                if role == "filter"
                else (self.skip_if(yes, no, node, d, tail, skip))
            )
        elif role == "map":
            self.emit(d, f"k, v = {self.bind(fn, 'f')}(k, v)", node)
        elif role == "map_values":
            self.emit(d, f"v = {self.bind(fn, 'f')}(v)", node)
        elif role == "flat_map":
            self.emit(d, f"for k, v in {self.bind(fn, 'f')}(k, v):", node)
            d, tail, skip = d + 1, True, "continue"
        elif role == "flat_map_values":
            self.emit(d, f"for v in {self.bind(fn, 'f')}(v):", node)
            d, tail, skip = d + 1, True, "continue"
        elif role == "select_key":
            self.emit(d, f"k = {self.bind(fn, 'f')}(k, v)", node)
        elif role in ("peek", "foreach"):
            self.emit(d, f"{self.bind(fn, 'f')}(k, v)", node)
        elif role == "table_filter":
            self.emit(d, f"if v is not None and not {self.bind(fn, 'f')}(k, v): v = None", node)
        elif role == "table_filter_not":
            self.emit(d, f"if v is not None and {self.bind(fn, 'f')}(k, v): v = None", node)
        elif role == "table_map_values":
            self.emit(d, f"if v is not None: v = {self.bind(fn, 'f')}(v)", node)
        elif role in ("aggregate", "table_source", "table_materialize"):
            cache = self.task.caches[node.stores[0]]
            tag = str(next(self.n))
            if role == "aggregate":
                lines = aggregate_code(node.node, cache, tag, self.env)
            else:
                lines = table_source_code(cache, tag, self.env)
            for line in lines:
                m = _SKIP_LINE.match(line)
                if m:
                    d = self.skip_if(m.group(1), f"not ({m.group(1)})", node, d, tail, skip)
                else:
                    self.emit(d, line, node)
        elif role in ("sink", "repartition_sink"):
            self.sink(node, d)
            return
        # branch, merge, to_stream: pass-through
        if role not in _TERMINAL:
            self.children(node, d, tail, skip)

    def sink(self, node: PhysNode, d: int) -> None:
        assert node.topic is not None
        ks, vs = node.topic.key_serde, node.topic.value_serde
        assert ks is not None and vs is not None
        kx = "k" if ks.identity else f"(None if k is None else {self.bind(ks.encode, 'ke')}(k))"
        vx = "v" if vs.identity else f"(None if v is None else {self.bind(vs.encode, 've')}(v))"
        topic = node.topic.name
        shared = self.b.shared.get(topic)
        if shared is not None:
            self.flush[topic] = shared
            add = self.bind(shared.append, "shared")
        else:
            if topic not in self.local_topics:
                self.local_topics[topic] = self.local_list("send", topic)
            add = self.local_topics[topic]
        self.emit(d, f"{add}(({kx}, {vx}, ts, h))", node)

    def split(self, node: PhysNode, d: int, tail: bool, skip: str) -> None:
        preds = node.node.param("predicates") or ()
        branch = {self.nodes[c].node.param("index"): c for c in node.children}
        for i, pred in enumerate(preds):
            if pred is None:
                self.emit(d, "else:" if i else "if True:", node)
            else:
                self.emit(d, f"{'elif' if i else 'if'} {self.bind(pred, 'p')}(k, v):", node)
            if i in branch:
                self.enter(branch[i], node.name, d + 1, tail, skip)
            if pred is None:
                break

    def children(self, node: PhysNode, d: int, tail: bool, skip: str) -> None:
        kids = node.children
        if len(kids) == 1:
            self.enter(kids[0], node.name, d, tail, skip)
            return
        if not kids:
            return
        i = next(self.n)
        self.emit(d, f"_k{i}, _v{i} = k, v", node)
        last = len(kids) - 1
        for j, child in enumerate(kids):
            if j:
                self.emit(d, f"k, v = _k{i}, _v{i}", node)
            self.enter(child, node.name, d, tail and j == last, skip)

    def enter(self, name: str, via: str, d: int, tail: bool, skip: str) -> None:
        """Hand the record to child ``name`` of step ``via``."""
        node = self.nodes[name]
        if node.role in _FUSED:
            if self.entries[name] > 1:
                self.emit(d, f"{self.function(name)}(k, v, ts, h)", node)
            else:
                self.step(name, d, tail, skip)
            return
        push = self.b.push_for(name, via)
        if via in self.ordered or self.b.reach[name] & self.conflict:
            self.nested = True
            self.emit(d, f"{self.bind(push, 'step')}([(k, v, ts, h)])", node)
        else:
            self.emit(d, f"{self.local_list('call', push)}((k, v, ts, h))", node)

    def function(self, name: str) -> str:
        """A step entered from several paths of the region: a local function they all call."""
        if name not in self.funcs:
            fname = self.funcs[name] = f"m{next(self.n)}"
            outer, self.buf = self.buf, []
            self.emit(1, f"def {fname}(k, v, ts, h):", self.nodes[name])
            self.step(name, 2, True, "return")
            self.func_bufs.append(self.buf)
            self.buf = outer
        return self.funcs[name]

    # -- assembling -----------------------------------------------------------------------------

    def compile(self) -> Push:
        """Generate, compile and wrap the region's ``run(batch)``."""
        node = self.nodes[self.root]
        if node.role in _HEADS and not self.virtual:
            assert node.topic is not None
            ks, vs = node.topic.key_serde, node.topic.value_serde
            assert ks is not None and vs is not None
            self.env["kd"], self.env["vd"] = ks.decode, vs.decode
            self.emit(1, "for kb, vb, ts, h, _p, @O in batch:", node)
            self.emit(2, "k = kb" if ks.identity else "k = None if kb is None else kd(kb)", node)
            self.emit(2, "v = vb" if vs.identity else "v = None if vb is None else vd(vb)", node)
            extractor = node.node.param("timestamp_extractor") or node.topic.timestamp_extractor
            if extractor is not None:
                self.env["tx"] = extractor
                self.env["newest"] = self.task.event_times.setdefault(node.topic.name, [-1])
                self.emit(2, "ts = tx(k, v, ts)", node)
                self.emit(2, "if ts > newest[0]: newest[0] = ts", node)
            self.children(node, 2, True, "continue")
        else:
            self.emit(1, "for k, v, ts, h in batch:", node)
            if self.virtual:
                self.children(node, 2, True, "continue")
            else:
                self.step(self.root, 2, True, "continue")
        # Under per-record calls, later steps have seen the records before a failure: the
        # offset stays out of ``_o`` so that error handlers replay the batch record by record.
        offset = "_oq" if self.nested else "_o"
        lines = ["def run(batch):"]
        owner: dict[int, PhysNode] = {}
        for i, (_, _, var) in enumerate(self.outputs):
            lines += [
                f"    {var} = []",
                f"    {'append' if i == 0 else f'append{i}'} = {var}.append",
            ]
        body = [line for buf in self.func_bufs for line in buf] + self.buf
        for idx, (d, code, n) in enumerate(body):
            lines.append("    " * d + code.replace("@O", offset))
            if n is not None:
                owner[len(lines)] = n
            if code.endswith(":") and (idx + 1 == len(body) or body[idx + 1][0] <= d):
                lines.append("    " * (d + 1) + "pass")
        names = [var for _, _, var in self.outputs]
        ret = names[0] if len(names) == 1 else f"({', '.join(names)},)" if names else "None"
        lines.append(f"    return {ret}")
        kind = "out" if self.virtual else "chain"
        filename = f"<flows task {self.task.id} {kind} {self.root} #{next(_counter)}>"
        source = "\n".join(lines) + "\n"
        exec(compile(source, filename, "exec"), self.env)
        self.task.generated[f"{self.root}/out" if self.virtual else self.root] = source
        return self.wrap(self.env["run"], filename, owner, node)

    def wrap(
        self,
        run: Callable[[Batch], Any],
        filename: str,
        owner: dict[int, PhysNode],
        first: PhysNode,
    ) -> Push:
        task = self.task
        clear = self.b.clear_shared
        send = task.collector.send
        flush = list(self.flush.items())
        outputs = [(kind, target) for kind, target, _ in self.outputs]

        def fail(exc: Exception) -> ProcessingError:
            node, where = _locate(exc.__traceback__, filename, owner, first)
            return _error(task, node, exc, where)

        if len(outputs) == 1 and outputs[0][0] == "send" and not flush:
            topic: str = outputs[0][1]

            def push_sink(batch: Batch) -> None:  # the common case: a chain into one topic
                try:
                    out = run(batch)
                except FlowsError:
                    clear()
                    raise
                except Exception as exc:
                    clear()
                    raise fail(exc) from exc
                if out:
                    send(topic, out, None)

            return push_sink

        many = len(outputs) > 1

        def push(batch: Batch) -> None:
            try:
                res = run(batch)
            except FlowsError:
                clear()
                raise
            except Exception as exc:
                clear()
                raise fail(exc) from exc
            for topic, lst in flush:
                if lst:
                    send(topic, lst[:], None)
                    lst.clear()
            if not outputs:
                return
            for (kind, target), out in zip(outputs, res if many else (res,), strict=True):
                if out:
                    if kind == "send":
                        send(target, out, None)
                    else:
                        target(out)

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
            for var in ("_o", "_oq"):
                if var in loc:
                    where = f" (partition {loc['_p']}, offset {loc[var]})"
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
