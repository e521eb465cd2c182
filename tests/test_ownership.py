"""The call ownership registry on a real redis-server, with short TTLs."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import redis

from tests.helpers import wait_until
from worker.ownership import OWNERS, Ownership, StaleCall, owner_key


@pytest.fixture
def ownership(redis_url: str) -> Iterator[Ownership]:
    client = redis.Redis.from_url(redis_url)
    try:
        yield Ownership(client)
    finally:
        client.close()


def test_only_one_of_many_concurrent_claims_wins(ownership: Ownership) -> None:
    nodes = [f"node-{i}@h" for i in range(12)]
    barrier = threading.Barrier(len(nodes))
    wins: dict[str, bool] = {}

    def claim(node: str) -> None:
        client = redis.Redis(connection_pool=ownership.redis.connection_pool)
        barrier.wait()
        wins[node] = Ownership(client).claim("call-1", node, ttl=30)

    threads = [threading.Thread(target=claim, args=(node,)) for node in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [node for node, won in wins.items() if won]
    assert len(winners) == 1
    assert ownership.owner("call-1") == winners[0]
    assert ownership.list_owned(winners[0]) == {"call-1"}
    # The owner claiming again (a redelivered task) keeps it; others still cannot.
    assert ownership.claim("call-1", winners[0], ttl=30)
    loser = next(node for node in nodes if node != winners[0])
    assert not ownership.claim("call-1", loser, ttl=30)


def test_ownership_expires_without_heartbeat(ownership: Ownership) -> None:
    assert ownership.claim("call-1", "node-a@h", ttl=0.3)
    assert ownership.owner("call-1") == "node-a@h"
    wait_until(lambda: ownership.owner("call-1") is None, timeout=5, what="the claim to expire")
    assert ownership.claim("call-1", "node-b@h", ttl=30)


def test_heartbeat_keeps_calls_and_the_node_alive(ownership: Ownership) -> None:
    assert ownership.claim("call-1", "node-a@h", ttl=0.5)
    assert ownership.claim("call-2", "node-b@h", ttl=30)
    lost = ownership.heartbeat("node-a@h", ["call-1", "call-2"], ttl=30)
    assert lost == {"call-2"}
    assert ownership.redis.pttl(owner_key("call-1")) > 5000
    assert ownership.owner("call-2") == "node-b@h"
    assert ownership.is_alive("node-a@h")


def test_heartbeat_takes_back_a_call_whose_key_expired(ownership: Ownership) -> None:
    assert ownership.claim("call-1", "node-a@h", ttl=0.2)
    wait_until(lambda: ownership.owner("call-1") is None, timeout=5, what="the claim to expire")
    assert ownership.heartbeat("node-a@h", ["call-1"], ttl=30) == set()
    assert ownership.owner("call-1") == "node-a@h"


def test_release_deletes_only_the_owners_claim(ownership: Ownership) -> None:
    assert ownership.claim("call-1", "node-a@h", ttl=30)
    assert not ownership.release("call-1", "node-b@h")
    assert ownership.owner("call-1") == "node-a@h"
    assert ownership.release("call-1", "node-a@h")
    assert ownership.owner("call-1") is None
    assert ownership.list_owned("node-a@h") == set()
    assert ownership.redis.hgetall(OWNERS) == {}
    assert not ownership.release("call-1", "node-a@h")


def test_stale_calls_are_those_of_nodes_that_stopped(ownership: Ownership) -> None:
    ownership.mark_alive("node-a@h", ttl=0.3)
    ownership.mark_alive("node-b@h", ttl=30)
    assert ownership.claim("a-1", "node-a@h", ttl=30)
    assert ownership.claim("b-1", "node-b@h", ttl=30)
    assert ownership.claim("b-2", "node-b@h", ttl=0.2)
    assert ownership.stale_calls() == []
    stale = wait_until(
        lambda: len(ownership.stale_calls()) == 2 and ownership.stale_calls(),
        timeout=5,
        what="node-a's liveness and b-2's claim to expire",
    )
    assert stale == [
        StaleCall("a-1", "node-a@h", "node node-a@h stopped its heartbeat"),
        StaleCall("b-2", "node-b@h", "node node-b@h stopped refreshing the call"),
    ]
    # The reaper hangs them up and releases them (the owner key may be gone already).
    assert ownership.release("a-1", "node-a@h")
    assert ownership.release("b-2", "node-b@h")
    assert ownership.stale_calls() == []
    assert ownership.owner("b-1") == "node-b@h"


def test_ttl_must_be_positive(ownership: Ownership) -> None:
    with pytest.raises(ValueError, match="TTL must be positive"):
        ownership.claim("call-1", "node-a@h", ttl=0)
