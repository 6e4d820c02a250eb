"""Foreign-key table-table join, on the partitioning of both tables (as in Kafka Streams).

``left.join(right, joiner, foreign_key=fn)`` joins each left row ``(k, v)`` with the right row
whose key is ``fn(v)``. Left and right rows of one pair live in different partitions, so the
join runs in three steps across two internal topics:

1. ``fk_subscribe`` (left side): on a left update, unsubscribe ``k`` from its old foreign key
   (kept in a store, so a changed foreign key retracts the old pairing) and subscribe it to the
   new one, sending ``(fk -> subscribe, hash(v), k)`` to the subscription topic, partitioned like
   the right table. A deleted left row, or one with no foreign key, is resolved locally.
2. ``fk_right`` (right side): keeps the subscriptions per foreign key; answers a subscription
   with the right row's current value, and on a right update answers every subscriber, through
   the response topic, partitioned like the left table.
3. ``fk_resolve`` (left side): joins the response with the left row's current value, unless
   the row changed since it subscribed (the hash differs: a newer response is on its way).
   An inner join forwards a tombstone when the right row is missing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.compiler import PhysNode
    from core.task import Task

Batch = list[Any]
Push = Callable[[Batch], None]

UNSUBSCRIBE = b"\x00"
SUBSCRIBE = b"\x01"


def value_hash(data: bytes) -> bytes:
    """8 bytes identifying a left value (stale responses are recognised by it)."""
    return hashlib.blake2b(data, digest_size=8).digest()


def make_fk_subscribe(task: Task, node: PhysNode, children: list[Push]) -> Push:
    left_store, fk_store = node.stores[0], node.stores[1]
    lspec = task.specs[left_store]
    assert lspec.key_serde is not None and lspec.value_serde is not None
    ke, ve = lspec.key_serde.encode, lspec.value_serde.encode
    fks = task.caches[fk_store]
    fk_of: Any = node.node.fn
    joiner = node.node.param("joiner")
    inner = node.node.param("how") == "inner"
    names = list(node.children)
    to_topic = children[next(i for i, n in enumerate(names) if n.endswith("-sink"))]
    local = children[next(i for i, n in enumerate(names) if not n.endswith("-sink"))]

    def push(batch: Batch) -> None:
        subs: Batch = []
        out: Batch = []
        for k, v, ts, h in batch:
            if k is None:
                continue
            old = fks.get(k)
            new = None if v is None else fk_of(v)
            if old is not None and old != new:
                subs.append((old, UNSUBSCRIBE + bytes(8) + ke(k), ts, h))
            if new is None:
                if old is not None:
                    fks.delete(k)
                out.append((k, None if v is None or inner else joiner(v, None), ts, h))
                continue
            fks.put(k, new)
            subs.append((new, SUBSCRIBE + value_hash(ve(v)) + ke(k), ts, h))
        if subs:
            to_topic(subs)
        if out:
            local(out)

    return push


def make_fk_right(task: Task, node: PhysNode, children: list[Push]) -> dict[str, Push]:
    subs = task.caches[node.stores[0]]
    rspec = task.specs[node.stores[1]]
    assert rspec.value_serde is not None
    rget = task.caches[node.stores[1]].get
    re = rspec.value_serde.encode

    def answer(h: bytes, value: Any) -> bytes:
        return h + (b"\x00" if value is None else b"\x01" + re(value))

    def on_subscription(batch: Batch) -> None:
        out: Batch = []
        for fk, payload, ts, hd in batch:
            if fk is None or payload is None:
                continue
            kb = payload[9:]
            if payload[:1] == UNSUBSCRIBE:
                subs.put(fk, kb, None)
                continue
            h = payload[1:9]
            subs.put(fk, kb, h)
            out.append((kb, answer(h, rget(fk)), ts, hd))
        if out:
            for child in children:
                child(out)

    def on_right(batch: Batch) -> None:
        out: Batch = []
        for fk, v, ts, hd in batch:
            if fk is None:
                continue
            for kb, h in sorted(subs.entries(fk).items()):  # key order, as in the store
                out.append((kb, answer(h, v), ts, hd))
        if out:
            for child in children:
                child(out)

    return {node.parents[0]: on_subscription, node.parents[1]: on_right}


def make_fk_resolve(task: Task, node: PhysNode, children: list[Push]) -> dict[str, Push]:
    lspec = task.specs[node.stores[0]]
    assert lspec.key_serde is not None and lspec.value_serde is not None
    kd, ve = lspec.key_serde.decode, lspec.value_serde.encode
    lget = task.caches[node.stores[0]].get
    rd = node.node.param("right_value_decode")
    joiner: Any = node.node.fn
    inner = node.node.param("how") == "inner"

    def send(out: Batch) -> None:
        if out:
            for child in children:
                child(out)

    def on_response(batch: Batch) -> None:
        out: Batch = []
        for kb, payload, ts, hd in batch:
            if kb is None or payload is None:
                continue
            k = kd(kb)
            v = lget(k)
            if v is None or value_hash(ve(v)) != payload[:8]:
                continue  # deleted or changed since it subscribed: a newer answer follows
            r = None if payload[8:9] == b"\x00" else rd(payload[9:])
            out.append((k, None if r is None and inner else joiner(v, r), ts, hd))
        send(out)

    return {node.parents[0]: send, node.parents[1]: on_response}
