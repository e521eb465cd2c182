"""Which worker node owns which live call: a Redis registry with heartbeats.

A call's media lives in exactly one node process, so follow-up events of a
call must reach that node. The node that answers a call *claims* it; the
ingress looks the owner up to route events; the node *heartbeats* its live
calls and itself; the reaper (beat) asks for *stale* calls, whose owner
stopped heart-beating, hangs them up and *releases* them.

Keys (all under ``callworker:``)::

    callworker:call:{call_id}:owner   node name, with a TTL refreshed by heartbeat
    callworker:node:{node}:alive      "1", with a TTL refreshed by heartbeat
    callworker:node:{node}:calls      set of call ids the node claimed
    callworker:owners                 hash call_id -> node: every claim not yet
                                      released, read by the reaper

Claim, heartbeat and release are Lua scripts, so each is atomic: two nodes
claiming one call at once cannot both win, and a node cannot release a call
another node owns. Node names are Celery node names (``name@host``), which
also name the node's direct queue. Redis errors (``redis.RedisError``)
propagate: the caller decides (the ingress answers 503).

The client is synchronous (Celery task threads and the ingress's intake
threads call it); from an event loop, call it through ``asyncio.to_thread``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis

PREFIX = "callworker:"
OWNERS = PREFIX + "owners"


def owner_key(call_id: str) -> str:
    return f"{PREFIX}call:{call_id}:owner"


def alive_key(node: str) -> str:
    return f"{PREFIX}node:{node}:alive"


def calls_key(node: str) -> str:
    return f"{PREFIX}node:{node}:calls"


# KEYS: owner, owners hash, node calls set. ARGV: call id, node, ttl ms.
# A claim by the node that already owns the call succeeds and refreshes it.
_CLAIM = """
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[2] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[1])
return 1
"""

# KEYS: alive key, owners hash, node calls set. ARGV: node, ttl ms, prefix, call ids...
# Returns the call ids the node no longer owns (another node holds them).
_HEARTBEAT = """
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
local lost = {}
for i = 4, #ARGV do
  local key = ARGV[3] .. 'call:' .. ARGV[i] .. ':owner'
  local current = redis.call('GET', key)
  if current == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
  elseif not current then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[1])
    redis.call('SADD', KEYS[3], ARGV[i])
  else
    table.insert(lost, ARGV[i])
  end
end
return lost
"""

# KEYS: owner, owners hash, node calls set. ARGV: call id, node.
# Deletes only if ``node`` owns the call (or owned it and the key expired).
_RELEASE = """
local current = redis.call('GET', KEYS[1])
local indexed = redis.call('HGET', KEYS[2], ARGV[1])
if current == ARGV[2] or (not current and indexed == ARGV[2]) then
  redis.call('DEL', KEYS[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('SREM', KEYS[3], ARGV[1])
  return 1
end
redis.call('SREM', KEYS[3], ARGV[1])
return 0
"""


@dataclass(frozen=True)
class StaleCall:
    """A claimed call whose owner stopped heart-beating."""

    call_id: str
    node: str
    reason: str


def _ms(seconds: float) -> int:
    if seconds <= 0:
        raise ValueError(f"a TTL must be positive, got {seconds} s")
    return max(1, round(seconds * 1000))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Ownership:
    """The call ownership registry on one Redis database."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._claim = client.register_script(_CLAIM)
        self._heartbeat = client.register_script(_HEARTBEAT)
        self._release = client.register_script(_RELEASE)

    def claim(self, call_id: str, node: str, ttl: float) -> bool:
        """Make ``node`` the owner of ``call_id`` unless another node owns it."""
        keys = [owner_key(call_id), OWNERS, calls_key(node)]
        return bool(self._claim(keys=keys, args=[call_id, node, _ms(ttl)]))

    def heartbeat(self, node: str, call_ids: Iterable[str], ttl: float) -> set[str]:
        """Refresh ``node``'s liveness and its calls' ownership for ``ttl`` seconds.

        Returns the call ids among ``call_ids`` that another node now owns
        (the caller should stop handling them). A call whose key had expired
        is taken back, since nobody else claimed it.
        """
        args: list[Any] = [node, _ms(ttl), PREFIX, *call_ids]
        lost = self._heartbeat(keys=[alive_key(node), OWNERS, calls_key(node)], args=args)
        return {_text(item) for item in lost}

    def mark_alive(self, node: str, ttl: float) -> None:
        self.redis.set(alive_key(node), "1", px=_ms(ttl))

    def is_alive(self, node: str) -> bool:
        return bool(self.redis.exists(alive_key(node)))

    def owner(self, call_id: str) -> str | None:
        """The node that owns ``call_id`` now, or None."""
        value = self.redis.get(owner_key(call_id))
        return None if value is None else _text(value)

    def release(self, call_id: str, node: str) -> bool:
        """Drop ``node``'s ownership of ``call_id``; False if ``node`` did not own it."""
        keys = [owner_key(call_id), OWNERS, calls_key(node)]
        return bool(self._release(keys=keys, args=[call_id, node]))

    def list_owned(self, node: str) -> set[str]:
        """Call ids ``node`` has claimed and not released."""
        return {_text(item) for item in self.redis.smembers(calls_key(node))}

    def stale_calls(self) -> list[StaleCall]:
        """Claimed calls whose owner is not alive or whose ownership expired."""
        claims = {_text(k): _text(v) for k, v in self.redis.hgetall(OWNERS).items()}
        if not claims:
            return []
        pipe = self.redis.pipeline(transaction=False)
        nodes = sorted(set(claims.values()))
        for node in nodes:
            pipe.exists(alive_key(node))
        call_ids = sorted(claims)
        for call_id in call_ids:
            pipe.get(owner_key(call_id))
        results = pipe.execute()
        alive = {node: bool(flag) for node, flag in zip(nodes, results, strict=False)}
        owners = dict(zip(call_ids, results[len(nodes) :], strict=True))
        stale: list[StaleCall] = []
        for call_id in call_ids:
            node = claims[call_id]
            if not alive[node]:
                stale.append(StaleCall(call_id, node, f"node {node} stopped its heartbeat"))
            elif owners[call_id] is None:
                stale.append(StaleCall(call_id, node, f"node {node} stopped refreshing the call"))
        return stale


def alive_nodes(client: redis.Redis) -> list[str]:
    """Names of the nodes whose liveness key has not expired."""
    prefix, suffix = f"{PREFIX}node:", ":alive"
    names = (_text(key) for key in client.scan_iter(match=f"{prefix}*{suffix}", count=100))
    return sorted(name[len(prefix) : -len(suffix)] for name in names)
