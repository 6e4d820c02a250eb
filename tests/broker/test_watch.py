"""PartitionWatch: wake-ups, timeouts, cancellation and no leaked waiters."""

from __future__ import annotations

import asyncio
import contextlib
import threading

from broker.watch import PartitionWatch


async def test_notify_wakes_waiter_on_that_partition() -> None:
    watch = PartitionWatch()
    waiter = asyncio.ensure_future(watch.wait({("t", 0), ("t", 1)}, 30.0))
    await asyncio.sleep(0)
    assert watch.waiting() == 2
    watch.notify("t", 1)
    await waiter
    assert watch.waiting() == 0


async def test_notify_of_other_partition_does_not_wake() -> None:
    watch = PartitionWatch()
    waiter = asyncio.ensure_future(watch.wait({("t", 0)}, 30.0))
    await asyncio.sleep(0)
    watch.notify("t", 1)
    watch.notify("other", 0)
    await asyncio.sleep(0)
    assert not waiter.done()
    watch.notify("t", 0)
    await waiter
    assert watch.waiting() == 0


async def test_timeout_returns_and_cleans_up() -> None:
    watch = PartitionWatch()
    await watch.wait({("t", 0)}, 0.01)
    assert watch.waiting() == 0


async def test_zero_or_negative_timeout_returns_at_once() -> None:
    watch = PartitionWatch()
    await watch.wait({("t", 0)}, 0)
    await watch.wait({("t", 0)}, -1)
    assert watch.waiting() == 0


async def test_cancel_cleans_up() -> None:
    watch = PartitionWatch()
    waiter = asyncio.ensure_future(watch.wait({("t", 0), ("u", 3)}, 30.0))
    await asyncio.sleep(0)
    waiter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiter
    assert watch.waiting() == 0
    watch.notify("t", 0)  # nothing left to wake; must not fail


async def test_many_waiters_one_notify() -> None:
    watch = PartitionWatch()
    waiters = [asyncio.ensure_future(watch.wait({("t", 0)}, 30.0)) for _ in range(50)]
    await asyncio.sleep(0)
    watch.notify("t", 0)
    await asyncio.gather(*waiters)
    assert watch.waiting() == 0


async def test_notify_with_no_waiters_is_a_no_op() -> None:
    watch = PartitionWatch()
    watch.notify("t", 0)
    assert watch.waiting() == 0


async def test_notify_from_another_thread() -> None:
    watch = PartitionWatch()
    waiter = asyncio.ensure_future(watch.wait({("t", 0)}, 30.0))
    await asyncio.sleep(0)
    thread = threading.Thread(target=watch.notify, args=("t", 0))
    thread.start()
    thread.join()
    await waiter
    assert watch.waiting() == 0
