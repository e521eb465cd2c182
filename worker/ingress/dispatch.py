"""The ingress's Redis side: deduplicated writes, batched into one script call per turn.

Every write the ingress makes for a notification is a :class:`Write`: "unless
``dedup_key`` exists, push ``value`` onto the list ``target`` (a Celery queue)
or set the key ``target`` to it, then mark ``dedup_key`` done for ``window``
seconds". :data:`WRITE_SCRIPT` does that in Redis as one atomic step, so:

- a notification is enqueued at most once, whatever copies arrive and
  however they interleave (no intermediate "processing" state is needed);
- a write that fails leaves no dedup key behind, so GoTo's retry gets through;
- a write Redis performed but whose reply was lost (the connection dropped)
  comes back as a duplicate when retried, not as a second message.

:class:`RedisDispatcher` runs on the ingress's event loop with an asyncio
Redis client. Writes submitted while a script call is in flight wait and go
together in the next call (at most ``max_batch`` per call), so under load one
Redis round trip serves many requests, and a lone request still goes out at
once. Each request still gets its own result: written, duplicate, or an
error.

Exceptions::

    Unavailable            Redis cannot be reached or failed; the ingress answers 503
    └── DispatchError      Redis refused one write (e.g. the queue key holds another type)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Literal, NamedTuple, Protocol

import redis
import redis.asyncio as aredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from worker.ingress.dedup import DONE
from worker.ownership import owner_key

log = logging.getLogger(__name__)

MAX_BATCH = 64
MAX_BATCH_BYTES = 4 * 1024 * 1024

# One call writes a batch of items. For item i (1-based): KEYS[2i-1] is its dedup key,
# KEYS[2i] its target key; line i of ARGV[2] is "<op> <window> <ttl> <size>": op "push"
# (LPUSH the value onto the target list) or "set" (SET the target to it, expiring in
# ttl seconds), window how long the dedup key is kept (s), size the value's length in
# bytes. The values are ARGV[1], concatenated in order. ARGV[3]: what a done dedup key
# holds. (Two arguments for all the values and specs instead of two per item: the
# client's cost grows with the number of arguments.)
# Returns {codes, error...}: codes has one character per item, "1" written, "0" a
# duplicate (nothing written), "e" refused (nothing written), with the error Redis
# gave for each "e", in order, after it.
WRITE_SCRIPT = """
local blob, specs, done = ARGV[1], ARGV[2], ARGV[3]
local codes, errors = {}, {}
local i, at = 0, 1
for spec in string.gmatch(specs, '[^\\n]+') do
  i = i + 1
  local op, window, ttl, size = string.match(spec, '^(%a+) (%d+) (%d+) (%d+)$')
  local value = string.sub(blob, at, at + (tonumber(size) or 0) - 1)
  at = at + (tonumber(size) or 0)
  if redis.call('EXISTS', KEYS[2 * i - 1]) == 1 then
    codes[i] = '0'
  else
    local reply
    if op == 'push' then
      reply = redis.pcall('LPUSH', KEYS[2 * i], value)
    elseif op == 'set' then
      reply = redis.pcall('SET', KEYS[2 * i], value, 'EX', ttl)
    else
      reply = {err = 'ERR unknown write ' .. spec}
    end
    if type(reply) == 'table' and reply.err then
      codes[i] = 'e'
      errors[#errors + 1] = reply.err
    else
      redis.call('SET', KEYS[2 * i - 1], done, 'EX', window)
      codes[i] = '1'
    end
  end
end
return {table.concat(codes), unpack(errors)}
"""


class Unavailable(Exception):
    """Redis is unreachable or failed; GoTo should retry the delivery (503)."""


class DispatchError(Unavailable):
    """Redis refused a write; nothing was written, so a retry can get through."""


class Write(NamedTuple):
    """Unless ``dedup_key`` exists: push ``value`` to list ``target`` (or set it), mark done.

    Immutable; a named tuple because one is made per request (cheaper than a frozen
    dataclass).
    """

    dedup_key: str
    target: str
    value: bytes | str
    window: int
    kind: Literal["push", "set"] = "push"
    ttl: int = 0


class Dispatcher(Protocol):
    """What the ingress reads from and writes to Redis."""

    def write(self, item: Write) -> Awaitable[bool]:
        """Perform ``item``; False if it was a duplicate. Raises :class:`Unavailable`."""
        ...

    async def owner(self, call_id: str) -> str | None:
        """The node that owns ``call_id``, or None. Raises :class:`Unavailable`."""
        ...

    async def ping(self) -> None: ...

    async def aclose(self) -> None: ...


def connect_redis(url: str) -> aredis.Redis:
    """An asyncio Redis client that fails fast: the ingress answers 503 instead of hanging."""
    return aredis.Redis.from_url(
        url,
        socket_connect_timeout=1.0,
        socket_timeout=2.0,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=30,
    )


def _unavailable(where: str, exc: BaseException) -> Unavailable:
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError | OSError):
        return Unavailable(f"Redis at {where} is unreachable: {exc}")
    return Unavailable(f"Redis at {where} failed: {type(exc).__name__}: {exc}")


_Pending = tuple[Write, "asyncio.Future[bool]"]


class RedisDispatcher:
    """Batched :data:`WRITE_SCRIPT` calls on an asyncio Redis client; use on one event loop."""

    def __init__(
        self, client: aredis.Redis, *, where: str = "redis", max_batch: int = MAX_BATCH
    ) -> None:
        self.redis = client
        self.where = where
        self.max_batch = max_batch
        self._script = client.register_script(WRITE_SCRIPT)
        self._pending: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None
        self.calls = 0  # script calls made, for tests and curiosity
        self.writes = 0

    def write(self, item: Write) -> asyncio.Future[bool]:
        """Queue ``item`` for the next script call; the future says written or duplicate."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._pending.append((item, future))
        if self._flusher is None:
            # Starts on the next turn of the loop: writes submitted meanwhile join it.
            self._flusher = loop.create_task(self._flush())
        return future

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch = self._take()
                try:
                    await self._run(batch)
                except Exception as exc:
                    if not isinstance(exc, redis.RedisError | OSError):
                        log.error("writing to Redis failed unexpectedly", exc_info=exc)
                    for _, future in batch:
                        if not future.done():
                            error = _unavailable(self.where, exc)
                            error.__cause__ = exc
                            future.set_exception(error)
                except BaseException:
                    for _, future in batch:
                        future.cancel()
                    raise
        finally:
            self._flusher = None
            # Left over only when cancelled (shutdown): nobody will write these any more.
            if self._pending:
                for _, future in self._pending:
                    future.cancel()
                self._pending.clear()

    def _take(self) -> list[_Pending]:
        size = 0
        count = 0
        for item, _ in self._pending:
            size += len(item.value)
            count += 1
            if count >= self.max_batch or size >= MAX_BATCH_BYTES:
                break
        batch = self._pending[:count]
        del self._pending[:count]
        return batch

    async def _run(self, batch: list[_Pending]) -> None:
        keys: list[str] = []
        values: list[bytes] = []
        specs: list[str] = []
        for item, _ in batch:
            value = item.value.encode() if isinstance(item.value, str) else item.value
            keys += (item.dedup_key, item.target)
            values.append(value)
            specs.append(f"{item.kind} {item.window} {item.ttl} {len(value)}")
        reply = await self._script(keys=keys, args=[b"".join(values), "\n".join(specs), DONE])
        self.calls += 1
        self.writes += len(batch)
        codes: bytes = reply[0]
        errors = iter(reply[1:])
        if len(codes) != len(batch):
            raise RuntimeError(f"the write script answered {codes!r} for {len(batch)} writes")
        for (item, future), code in zip(batch, codes, strict=True):
            if future.done():
                continue
            if code == ord("1"):
                future.set_result(True)
            elif code == ord("0"):
                future.set_result(False)
            else:
                error = next(errors, b"?")
                text = error.decode(errors="replace") if isinstance(error, bytes) else str(error)
                future.set_exception(
                    DispatchError(f"Redis at {self.where} refused a write to {item.target}: {text}")
                )

    async def owner(self, call_id: str) -> str | None:
        try:
            value = await self.redis.get(owner_key(call_id))
        except Exception as exc:
            raise _unavailable(self.where, exc) from exc
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    async def ping(self) -> None:
        try:
            await self.redis.ping()
        except Exception as exc:
            raise _unavailable(self.where, exc) from exc

    async def aclose(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
        if self.calls:
            log.info(
                "%d writes went to Redis in %d script calls (%.1f per call)",
                self.writes,
                self.calls,
                self.writes / self.calls,
            )
        await self.redis.aclose()
