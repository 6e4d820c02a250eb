"""Render a compiled topology as text (like Kafka Streams), Graphviz dot, or Mermaid."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.compiler import PhysNode, Topology


def _line(node: PhysNode) -> str:
    if node.kind == "source":
        topic = node.topic.name if node.topic else "?"
        return f"    Source: {node.name} (topics: [{topic}])"
    if node.kind == "sink":
        topic = node.topic.name if node.topic else "?"
        return f"    Sink: {node.name} (topic: {topic})"
    return f"    Processor: {node.name} (stores: [{', '.join(node.stores)}]){_detail(node)}"


def _detail(node: PhysNode) -> str:
    """What a windowed, suppressing or joining step does (Kafka's layout has no such field)."""
    parts = []
    how = node.node.param("how")
    if how is not None:
        parts.append(f"{how} join")
    window = node.node.param("window")
    if window is not None:
        parts.append(window.describe())
    if node.role == "suppress":
        parts.append(
            "until window closes" + (", wall clock" if node.node.param("wall_clock") else "")
        )
    return f" [{'; '.join(parts)}]" if parts else ""


def _stores(topology: Topology) -> list[str]:
    out = []
    for spec in topology.stores.values():
        if spec.kind != "kv":
            retention = f", retention {spec.retention_ms}ms" if spec.kind != "prefix" else ""
            out.append(f"    Store: {spec.name} ({spec.kind}{retention})")
    return out


def text(topology: Topology) -> str:
    """The Kafka Streams ``Topology.describe()`` layout, one block per sub-topology."""
    out = ["Topologies:"]
    for i, sub in enumerate(topology.subtopologies):
        if i:
            out.append("")
        suffix = " for global store (will not generate tasks)" if sub.is_global else ""
        out.append(f"   Sub-topology: {sub.id}{suffix}")
        for node in sub.nodes:
            out.append(_line(node))
            if node.kind != "sink":
                out.append(f"      --> {', '.join(node.children) or 'none'}")
            if node.kind != "source":
                out.append(f"      <-- {', '.join(node.parents) or 'none'}")
    stores = _stores(topology)
    if stores:
        out.extend(["", "   Window and session stores:", *stores])
    if topology.plan.crons:
        out.extend(["", "   Cron jobs:"])
        for job in topology.plan.crons:
            where = "once per application" if job.per == "application" else "in every task"
            tz = f", tz {job.tz}" if job.tz else ""
            out.append(f"    Cron: {job.name} ({job.expr!r}{tz}, {where})")
    return "\n".join(out) + "\n"


def _id(name: str) -> str:
    return "n_" + "".join(c if c.isalnum() else "_" for c in name)


def dot(topology: Topology) -> str:
    """A Graphviz drawing: one cluster per sub-topology, topics as ellipses."""
    out = [f'digraph "{topology.app_id}" {{', "  rankdir=LR;", "  node [shape=box];"]
    topics: set[str] = set()
    for sub in topology.subtopologies:
        out.append(f'  subgraph cluster_{sub.id} {{ label="Sub-topology {sub.id}";')
        for node in sub.nodes:
            out.append(f'    {_id(node.name)} [label="{node.name}"];')
        out.append("  }")
        for node in sub.nodes:
            for child in node.children:
                out.append(f"  {_id(node.name)} -> {_id(child)};")
            if node.topic is not None:
                t = node.topic.name
                topics.add(t)
                if node.kind == "source":
                    out.append(f"  {_id('topic ' + t)} -> {_id(node.name)};")
                elif node.kind == "sink":
                    out.append(f"  {_id(node.name)} -> {_id('topic ' + t)};")
    for t in sorted(topics):
        out.append(f'  {_id("topic " + t)} [label="{t}", shape=ellipse];')
    out.append("}")
    return "\n".join(out) + "\n"


def mermaid(topology: Topology) -> str:
    """A Mermaid flowchart: one subgraph per sub-topology, topics as rounded nodes."""
    out = ["flowchart LR"]
    for sub in topology.subtopologies:
        out.append(f'  subgraph st{sub.id}["Sub-topology {sub.id}"]')
        for node in sub.nodes:
            out.append(f'    {_id(node.name)}["{node.name}"]')
        out.append("  end")
    for sub in topology.subtopologies:
        for node in sub.nodes:
            for child in node.children:
                out.append(f"  {_id(node.name)} --> {_id(child)}")
            if node.topic is not None:
                t = _id("topic " + node.topic.name)
                if node.kind == "source":
                    out.append(f'  {t}(["{node.topic.name}"]) --> {_id(node.name)}')
                elif node.kind == "sink":
                    out.append(f'  {_id(node.name)} --> {t}(["{node.topic.name}"])')
    return "\n".join(out) + "\n"
