"""Tiny raw Kafka requests for diagnosing connectivity (used by ``flows doctor``).

A normal client hides *why* it cannot talk to a cluster: it bootstraps, gets the advertised
addresses and silently retries them. To explain a broken listener we need each step on its
own -- resolve, connect, one ApiVersions round trip, the Metadata answer exactly as the broker
sent it, FindCoordinator -- so this module speaks the few non-flexible request versions it
needs directly over asyncio streams. It keeps no state and never retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from dataclasses import dataclass, field
from enum import StrEnum

API_METADATA = 3
API_FIND_COORDINATOR = 10
API_VERSIONS = 18
CLIENT_ID = b"flows-doctor"
MAX_RESPONSE = 64 * 1024 * 1024


class ProbeStatus(StrEnum):
    """How far a connection attempt got."""

    UNRESOLVABLE = "does not resolve"
    REFUSED = "refuses connections"
    TIMEOUT = "times out"
    UNREACHABLE = "is unreachable"
    NOT_KAFKA = "does not speak Kafka"
    OK = "answers"


class ProtocolError(Exception):
    """The peer sent something that is not a valid answer to our request."""


@dataclass
class Probe:
    """Outcome of resolve + TCP connect + ApiVersions to one ``host:port``."""

    host: str
    port: int
    status: ProbeStatus
    detail: str = ""
    addresses: list[str] = field(default_factory=list)
    api_versions: dict[int, tuple[int, int]] = field(default_factory=dict)
    elapsed_ms: float = 0.0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def ok(self) -> bool:
        return self.status is ProbeStatus.OK


@dataclass(frozen=True)
class BrokerAddress:
    node_id: int
    host: str
    port: int


@dataclass(frozen=True)
class PartitionInfo:
    partition: int
    error_code: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


@dataclass(frozen=True)
class TopicInfo:
    name: str
    error_code: int
    partitions: tuple[PartitionInfo, ...]


@dataclass(frozen=True)
class Metadata:
    brokers: tuple[BrokerAddress, ...]
    controller_id: int
    topics: tuple[TopicInfo, ...]


@dataclass(frozen=True)
class Coordinator:
    error_code: int
    node_id: int
    host: str
    port: int


# --- encoding ---------------------------------------------------------------------------


def _string(value: str | bytes) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return struct.pack(">h", len(data)) + data


def encode_request(api_key: int, version: int, correlation_id: int, body: bytes) -> bytes:
    """A size-prefixed request with a v1 (non-flexible) header."""
    header = struct.pack(">hhi", api_key, version, correlation_id) + _string(CLIENT_ID)
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


class Reader:
    """Cursor over a response body; raises :class:`ProtocolError` when it runs short."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, fmt: str) -> tuple[int, ...]:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ProtocolError("response ended early")
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values

    def int8(self) -> int:
        return self._take(">b")[0]

    def int16(self) -> int:
        return self._take(">h")[0]

    def int32(self) -> int:
        return self._take(">i")[0]

    def string(self) -> str | None:
        length = self.int16()
        if length < 0:
            return None
        if self.pos + length > len(self.data):
            raise ProtocolError("response ended early")
        text = self.data[self.pos : self.pos + length].decode("utf-8", "replace")
        self.pos += length
        return text

    def count(self) -> int:
        n = self.int32()
        if n > 1_000_000:
            raise ProtocolError(f"implausible array length {n}")
        return max(n, 0)

    def int32_array(self) -> tuple[int, ...]:
        return tuple(self.int32() for _ in range(self.count()))


# --- connection -------------------------------------------------------------------------


class Connection:
    """One TCP connection that sends a request and reads its response."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.correlation_id = 0

    async def request(self, api_key: int, version: int, body: bytes, timeout_s: float) -> Reader:
        self.correlation_id += 1
        self.writer.write(encode_request(api_key, version, self.correlation_id, body))
        async with asyncio.timeout(timeout_s):
            await self.writer.drain()
            size = struct.unpack(">i", await self.reader.readexactly(4))[0]
            if not 4 <= size <= MAX_RESPONSE:
                raise ProtocolError(f"implausible response size {size}")
            payload = await self.reader.readexactly(size)
        reader = Reader(payload)
        if reader.int32() != self.correlation_id:
            raise ProtocolError("response correlation id does not match the request")
        return reader

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


async def probe(host: str, port: int, timeout_s: float = 5.0) -> tuple[Probe, Connection | None]:
    """Resolve, connect and send ApiVersions; returns the probe and, if it answered, the open
    connection (the caller closes it)."""
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    result = Probe(host, port, ProbeStatus.UNRESOLVABLE)
    try:
        async with asyncio.timeout(timeout_s):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        result.detail = str(exc)
        return result, None
    except TimeoutError:
        result.detail = f"name lookup took more than {timeout_s:g}s"
        return result, None
    result.addresses = sorted({str(info[4][0]) for info in infos})
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(host, port)
    except ConnectionRefusedError as exc:
        result.status, result.detail = ProbeStatus.REFUSED, str(exc)
        return result, None
    except TimeoutError:
        result.status = ProbeStatus.TIMEOUT
        result.detail = f"no TCP answer within {timeout_s:g}s"
        return result, None
    except OSError as exc:
        result.status, result.detail = ProbeStatus.UNREACHABLE, exc.strerror or str(exc)
        return result, None
    conn = Connection(reader, writer)
    try:
        body = await conn.request(API_VERSIONS, 0, b"", timeout_s)
        error = body.int16()
        versions = {}
        for _ in range(body.count()):
            key, low, high = body.int16(), body.int16(), body.int16()
            versions[key] = (low, high)
        if error or not versions:
            raise ProtocolError(f"ApiVersions answered with error code {error}")
    except (ProtocolError, OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
        await conn.close()
        result.status = ProbeStatus.NOT_KAFKA
        result.detail = str(exc) or type(exc).__name__
        return result, None
    result.status = ProbeStatus.OK
    result.api_versions = versions
    result.elapsed_ms = (time.perf_counter() - started) * 1000
    return result, conn


def pick_version(versions: dict[int, tuple[int, int]], api_key: int, wanted: range) -> int | None:
    """The highest version in ``wanted`` the broker supports, or ``None``."""
    if api_key not in versions:
        return None
    low, high = versions[api_key]
    usable = [v for v in wanted if low <= v <= high]
    return max(usable) if usable else None


async def metadata(conn: Connection, version: int, topics: list[str], timeout_s: float) -> Metadata:
    """Metadata v0..v5 for ``topics`` (never auto-creates on v4+; empty list: brokers only)."""
    body = struct.pack(">i", len(topics)) + b"".join(_string(t) for t in topics)
    if version >= 4:
        body += b"\x00"  # allow_auto_topic_creation = false
    r = await conn.request(API_METADATA, version, body, timeout_s)
    if version >= 3:
        r.int32()  # throttle_time_ms
    brokers = []
    for _ in range(r.count()):
        node_id, host, port = r.int32(), r.string() or "", r.int32()
        if version >= 1:
            r.string()  # rack
        brokers.append(BrokerAddress(node_id, host, port))
    if version >= 2:
        r.string()  # cluster_id
    controller = r.int32() if version >= 1 else -1
    topic_infos = []
    for _ in range(r.count()):
        error, name = r.int16(), r.string() or ""
        if version >= 1:
            r.int8()  # is_internal
        parts = []
        for _ in range(r.count()):
            p_error, index, leader = r.int16(), r.int32(), r.int32()
            replicas, isr = r.int32_array(), r.int32_array()
            if version >= 5:
                r.int32_array()  # offline_replicas
            parts.append(PartitionInfo(index, p_error, leader, replicas, isr))
        topic_infos.append(TopicInfo(name, error, tuple(parts)))
    return Metadata(tuple(brokers), controller, tuple(topic_infos))


async def find_coordinator(
    conn: Connection, version: int, group: str, timeout_s: float
) -> Coordinator:
    """FindCoordinator v0..v2 for a consumer group."""
    body = _string(group) + (b"\x00" if version >= 1 else b"")
    r = await conn.request(API_FIND_COORDINATOR, version, body, timeout_s)
    if version >= 1:
        r.int32()  # throttle_time_ms
    error = r.int16()
    if version >= 1:
        r.string()  # error_message
    return Coordinator(error, r.int32(), r.string() or "", r.int32())
