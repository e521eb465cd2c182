"""RedisDispatcher on a real redis-server: atomic dedup-and-write, batching, per-write errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis

from tests.helpers import free_port
from worker.ingress.dedup import DONE
from worker.ingress.dispatch import (
    DispatchError,
    RedisDispatcher,
    Unavailable,
    Write,
    connect_redis,
)
from worker.ownership import Ownership


@pytest.fixture
async def dispatcher(redis_url: str) -> AsyncIterator[RedisDispatcher]:
    gateway = RedisDispatcher(connect_redis(redis_url), where="test-redis")
    try:
        yield gateway
    finally:
        await gateway.aclose()


def push(i: int | str, queue: str = "q") -> Write:
    return Write(f"dedup:{i}", queue, f"message-{i}".encode(), 300)


async def test_concurrent_writes_share_script_calls_and_keep_their_order(
    dispatcher: RedisDispatcher, rdb: redis.Redis
) -> None:
    results = await asyncio.gather(*(dispatcher.write(push(i)) for i in range(50)))
    assert results == [True] * 50
    assert dispatcher.writes == 50
    assert dispatcher.calls <= 2, f"50 writes submitted at once took {dispatcher.calls} calls"
    # Consumers pop from the right (BRPOP): oldest first is submission order.
    assert [m.decode() for m in reversed(rdb.lrange("q", 0, -1))] == [
        f"message-{i}" for i in range(50)
    ]
    assert rdb.get("dedup:0") == DONE
    assert 290 < rdb.ttl("dedup:0") <= 300


async def test_a_lone_write_goes_out_without_waiting_for_company(
    dispatcher: RedisDispatcher, rdb: redis.Redis
) -> None:
    assert await asyncio.wait_for(dispatcher.write(push("alone")), timeout=10) is True
    assert rdb.llen("q") == 1


async def test_batches_are_capped(redis_url: str, rdb: redis.Redis) -> None:
    gateway = RedisDispatcher(connect_redis(redis_url), max_batch=4)
    try:
        assert all(await asyncio.gather(*(gateway.write(push(i)) for i in range(10))))
        assert gateway.calls == 3
    finally:
        await gateway.aclose()
    assert rdb.llen("q") == 10


async def test_copies_in_one_batch_and_later_are_written_once(
    dispatcher: RedisDispatcher, rdb: redis.Redis
) -> None:
    first = await asyncio.gather(*(dispatcher.write(push("same")) for _ in range(5)))
    assert first == [True, False, False, False, False]
    assert await dispatcher.write(push("same")) is False
    assert rdb.llen("q") == 1


async def test_a_refused_write_fails_alone_and_leaves_no_dedup_key(
    dispatcher: RedisDispatcher, rdb: redis.Redis
) -> None:
    rdb.set("not-a-list", "x")
    results = await asyncio.gather(
        dispatcher.write(push(1)),
        dispatcher.write(push(2, queue="not-a-list")),
        dispatcher.write(push(3)),
        return_exceptions=True,
    )
    assert results[0] is True and results[2] is True
    error = results[1]
    assert isinstance(error, DispatchError)
    assert "refused a write to not-a-list" in str(error)
    assert "WRONGTYPE" in str(error)
    assert rdb.exists("dedup:2") == 0
    assert rdb.llen("q") == 2
    # Once the key is usable, the retry of the same write gets through.
    rdb.delete("not-a-list")
    assert await dispatcher.write(push(2, queue="not-a-list")) is True


async def test_set_writes_expire_and_dedup_too(
    dispatcher: RedisDispatcher, rdb: redis.Redis
) -> None:
    write = Write("dedup:g", "greeted", "2026-03-02T12:00:00+00:00", 600, "set", 3600)
    assert await dispatcher.write(write) is True
    assert await dispatcher.write(write._replace(value="later")) is False
    assert rdb.get("greeted") == b"2026-03-02T12:00:00+00:00"
    assert 3590 < rdb.ttl("greeted") <= 3600
    assert 590 < rdb.ttl("dedup:g") <= 600


async def test_owner_lookup(dispatcher: RedisDispatcher, rdb: redis.Redis) -> None:
    assert Ownership(rdb).claim("call-o", "node-a@h", ttl=60)
    assert await dispatcher.owner("call-o") == "node-a@h"
    assert await dispatcher.owner("call-nobody") is None


async def test_no_redis_means_unavailable_for_every_waiting_write() -> None:
    where = f"127.0.0.1:{free_port()}/0"
    gateway = RedisDispatcher(connect_redis(f"redis://{where}"), where=where)
    try:
        results = await asyncio.gather(
            *(gateway.write(push(i)) for i in range(3)), return_exceptions=True
        )
        assert all(isinstance(r, Unavailable) for r in results), results
        assert all(f"Redis at {where} is unreachable" in str(r) for r in results)
        with pytest.raises(Unavailable, match="unreachable"):
            await gateway.owner("call-x")
        with pytest.raises(Unavailable, match="unreachable"):
            await gateway.ping()
    finally:
        await gateway.aclose()
