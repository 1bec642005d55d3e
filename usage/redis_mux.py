"""One pipelined Redis connection per event loop for the limiter's hot path (usage/limits.py).

Every call of a worker reserves and settles its limits in Redis, and each settle carries the call's usage
record. Through redis-py each command cost about 100 µs of CPU (connection pool, retry wrapper, per-command
parsing layers) and its own send: under load the send syscalls, each waking Redis, were the largest cost of
the gateway after RSA signing. Here every task of the loop writes to one connection: commands issued during
one iteration of the loop leave in one write (automatic pipelining), Redis answers them in order, and hiredis
parses the replies. At one request at a time this is the same round trip as before, with far less CPU.

Only what the limiter needs: `redis://`, `rediss://` and `unix://` URLs (user, password, database), commands
as tuples, replies as hiredis returns them (bytes, ints, lists, None); a Redis error reply is a `ReplyError`
value in `execute()`'s result, a lost connection raises `ConnectionError`. Callers bound their waits with
asyncio.timeout(); a connection whose oldest unanswered command is older than `stale_after` is dropped and
opened again.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import ssl
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis


class ReplyError(Exception):
    """An error reply of Redis (NOSCRIPT, WRONGTYPE, ...)."""


def pack(command: tuple) -> bytes:
    """One command in RESP."""
    parts = [b"*%d\r\n" % len(command)]
    for arg in command:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode()
        else:
            data = str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class _Connection(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.reader = hiredis.Reader()
        self.waiters: collections.deque[tuple[asyncio.Future, float]] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self.outgoing: list[bytes] = []
        self.lost: BaseException | None = None
        self.writes = 0  # writes to the socket (the tests count round trips with it)

    def connection_made(self, transport) -> None:
        self.transport = transport

    def send(self, command: tuple) -> asyncio.Future:
        """Queue a command; it leaves with the others of this loop iteration. The future gets its reply."""
        future = self.loop.create_future()
        if self.lost is not None:
            future.set_exception(ConnectionError(f"Redis connection lost: {self.lost}"))
            return future
        if not self.outgoing:
            self.loop.call_soon(self._flush)
        self.outgoing.append(pack(command))
        self.waiters.append((future, self.loop.time()))
        return future

    def _flush(self) -> None:
        if self.outgoing and self.lost is None:
            data, self.outgoing = b"".join(self.outgoing), []
            self.transport.write(data)
            self.writes += 1

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while True:
            reply = self.reader.gets()
            if reply is False:
                return
            future, _sent = self.waiters.popleft()
            if future.done():  # its caller gave up (a timeout): the reply is dropped
                continue
            if isinstance(reply, hiredis.ReplyError):
                future.set_exception(ReplyError(str(reply)))
            else:
                future.set_result(reply)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost = exc or ConnectionError("closed")
        self.outgoing = []
        while self.waiters:
            future, _sent = self.waiters.popleft()
            if not future.done():
                future.set_exception(ConnectionError(f"Redis connection lost: {self.lost}"))

    def stale(self, now: float, after: float) -> bool:
        return bool(self.waiters) and now - self.waiters[0][1] > after


class MuxRedis:
    """A pipelined Redis client bound to the event loop that first uses it."""

    def __init__(self, url: str, *, connect_timeout: float = 1.0, stale_after: float = 5.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"unsupported Redis URL scheme {parts.scheme!r}")
        self.unix_path = parts.path if parts.scheme == "unix" else None
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 6379
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        path = "" if self.unix_path else parts.path.strip("/")
        db = parse_qs(parts.query).get("db", [path])[0]
        self.db = int(db) if db else 0
        self.tls = parts.scheme == "rediss"
        self.connect_timeout, self.stale_after = connect_timeout, stale_after
        self._conn: _Connection | None = None
        self._lock: asyncio.Lock | None = None

    async def _connection(self) -> _Connection:
        conn = self._conn
        if conn is not None and conn.lost is None:
            if not conn.stale(conn.loop.time(), self.stale_after):
                return conn
            conn.transport.abort()  # Redis stopped answering: fail what waits, start afresh
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._conn is not None and self._conn.lost is None and self._conn is not conn:
                return self._conn
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(self.connect_timeout):
                if self.unix_path:
                    _transport, conn = await loop.create_unix_connection(lambda: _Connection(loop), self.unix_path)
                else:
                    _transport, conn = await loop.create_connection(
                        lambda: _Connection(loop), self.host, self.port,
                        ssl=ssl.create_default_context() if self.tls else None,
                    )
                setup = []
                if self.password is not None:
                    setup.append(("AUTH", self.username, self.password) if self.username else ("AUTH", self.password))
                if self.db:
                    setup.append(("SELECT", self.db))
                for future in [conn.send(c) for c in setup]:
                    await future
            self._conn = conn
            return conn

    async def execute(self, *commands: tuple) -> list:
        """Send the commands together; their replies in order (an error reply as a ReplyError value)."""
        conn = await self._connection()
        return await self.replies([conn.send(c) for c in commands])

    @property
    def ready(self) -> bool:
        """A connection is open and answering: `queue()` can take commands without waiting."""
        conn = self._conn
        return conn is not None and conn.lost is None and not conn.stale(conn.loop.time(), self.stale_after)

    def queue(self, *commands: tuple) -> list[asyncio.Future]:
        """Queue the commands on the open connection (`ready`) at once, without awaiting anything: they leave
        with the others of this loop iteration, or at `flush()`. `replies()` waits for their answers."""
        return [self._conn.send(c) for c in commands]

    @staticmethod
    async def replies(futures: list[asyncio.Future]) -> list:
        """The replies of queued commands in order (an error reply as a ReplyError value)."""
        replies = []
        try:
            for future in futures:
                try:
                    replies.append(await future)
                except ReplyError as exc:
                    replies.append(exc)
        finally:
            for future in futures:
                if not future.done():
                    future.cancel()  # cancelled or failed halfway: the replies still to come are dropped
        return replies

    async def command(self, *args):
        """One command; an error reply raises ReplyError."""
        (reply,) = await self.execute(args)
        if isinstance(reply, ReplyError):
            raise reply
        return reply

    async def evalsha(self, script: Script, keys: list, args: list):
        """Run a script by its SHA1, loading it first if Redis does not know it (a restart, a new server)."""
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        (reply,) = await self.execute(command)
        if isinstance(reply, ReplyError) and str(reply).startswith("NOSCRIPT"):
            await self.command("SCRIPT", "LOAD", script.source)
            (reply,) = await self.execute(command)
        if isinstance(reply, ReplyError):
            raise reply
        return reply

    @property
    def idle(self) -> bool:
        """No command queued or waiting for its reply."""
        conn = self._conn
        return conn is None or not (conn.waiters or conn.outgoing)

    def flush(self) -> None:
        """Send the commands queued in this loop iteration now, instead of when the iteration ends."""
        if self._conn is not None:
            self._conn._flush()

    @property
    def all_sent(self) -> bool:
        """Everything queued has been handed to the kernel (none of it waits in this process's buffers) on a
        connection still open."""
        conn = self._conn
        return (conn is not None and conn.lost is None and not conn.outgoing
                and conn.transport.get_write_buffer_size() == 0)

    def close(self) -> None:
        if self._conn is not None and self._conn.transport is not None:
            self._conn.transport.close()
        self._conn = None

    @property
    def writes(self) -> int:
        return self._conn.writes if self._conn is not None else 0


class Script:
    __slots__ = ("source", "sha")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
