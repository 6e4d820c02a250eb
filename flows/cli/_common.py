"""Shared pieces of the ``flows`` commands that talk to a broker.

Every command module uses the same four things, so they live here once:

* :data:`BrokerOption` -- the ``--broker kafka://host:port[,host:port]`` option, and
  :func:`resolve_bootstrap`, which applies the documented fallback (``--broker``, else
  ``FLOWS_BROKER``, else the embedded broker started on demand under ``./.flows/``).
* :class:`CliError` and :func:`handle_errors` -- a user mistake or an unreachable broker ends in
  ONE line on stderr that says what is wrong and what to do, and a non-zero exit code; never a
  traceback.
* :func:`run` plus the client context managers (:func:`admin_client`, :func:`producer_client`,
  :func:`consumer_client`) -- asyncio entry point and aiokafka clients whose connection failures
  turn into that one line.
* Output helpers (:data:`console`, :func:`print_table`, :func:`echo_error`).

Example of a new command::

    @app.command("hello")
    @handle_errors
    def hello(broker: BrokerOption = None) -> None:
        bootstrap = resolve_bootstrap(broker)
        run(_hello(bootstrap))
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any, ParamSpec, TypeVar

import click
import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError, for_code
from aiokafka.protocol.metadata import MetadataRequest
from rich.console import Console
from rich.table import Table

P = ParamSpec("P")
T = TypeVar("T")

#: How long one request to the broker may take before the command gives up (ms).
REQUEST_TIMEOUT_MS = 15_000
#: The client id the commands present to the broker (visible in broker logs and metrics).
CLIENT_ID = "flows-cli"

BROKER_HELP = (
    "Broker to talk to, kafka://host:port[,host:port]. "
    "Default: $FLOWS_BROKER, else the embedded broker under ./.flows/."
)

BrokerOption = Annotated[
    str | None,
    typer.Option(
        "--broker",
        help=BROKER_HELP,
        metavar="kafka://HOST:PORT[,HOST:PORT]",
        show_default=False,
    ),
]
"""The ``--broker`` option every broker-facing command takes (``None`` when not given)."""

#: Standard output for results; rich markup, but plain text when piped.
console = Console(highlight=False, soft_wrap=True)

HOW_TO_START = (
    "is it running? Start one with `flows broker start` or set FLOWS_BROKER=kafka://host:port"
)


class CliError(Exception):
    """A problem the user can fix; printed as one line, exits with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def echo_error(message: str) -> None:
    """Print one error line to stderr (plain text: never wrapped, never styled)."""
    typer.echo(f"error: {message}", err=True)


def cannot_connect(bootstrap: str) -> str:
    """The message for a broker that did not answer at ``bootstrap``."""
    return f"cannot connect to broker {bootstrap} -- {HOW_TO_START}"


_current_bootstrap: list[str] = []


def handle_errors(fn: Callable[P, T]) -> Callable[P, T]:
    """Turn every expected failure of a command into one stderr line and a non-zero exit.

    :class:`CliError` keeps its message; aiokafka connection errors name the broker and how
    to start one; other Kafka errors show the Kafka error name; Ctrl-C exits with 130.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except (click.exceptions.Exit, click.exceptions.ClickException, click.exceptions.Abort):
            raise
        except CliError as exc:
            echo_error(exc.message)
            raise typer.Exit(exc.exit_code) from None
        except BrokenPipeError:
            # The reader went away (`flows consume ... | head`): stop quietly.
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(0) from None
        except (KafkaConnectionError, ConnectionError) as exc:
            where = _current_bootstrap[-1] if _current_bootstrap else "(unknown)"
            echo_error(f"{cannot_connect(where)} ({exc})")
            raise typer.Exit(1) from None
        except KafkaTimeoutError:
            where = _current_bootstrap[-1] if _current_bootstrap else "(unknown)"
            echo_error(f"broker {where} did not answer in time -- {HOW_TO_START}")
            raise typer.Exit(1) from None
        except KafkaError as exc:
            echo_error(describe_kafka_error(exc))
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None

    return wrapper


def describe_kafka_error(exc: BaseException) -> str:
    """``"KAFKA_ERROR_NAME: detail"`` for an aiokafka error, for one-line messages."""
    name = getattr(exc, "message", None) or type(exc).__name__
    detail = str(exc)
    if detail and detail != name:
        return f"{name}: {detail}"
    return str(name)


def kafka_error_name(code: int) -> str:
    """The Kafka name of an error code (``36`` -> ``"TOPIC_ALREADY_EXISTS"``)."""
    cls = for_code(code)
    return str(getattr(cls, "message", cls.__name__))


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one command's coroutine to completion (the only event loop of the process)."""
    return asyncio.run(coro)


# --- broker address -------------------------------------------------------------------------

_HOSTPORT = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


def parse_broker_url(value: str) -> str:
    """``kafka://h1:p1,h2:p2`` -> ``"h1:p1,h2:p2"`` (aiokafka's bootstrap form).

    A bare ``host:port[,host:port]`` is accepted too. Raises :class:`CliError` on anything else.

    >>> parse_broker_url("kafka://127.0.0.1:9092,kafka-2:19092")
    '127.0.0.1:9092,kafka-2:19092'
    """
    text = value.strip()
    if "://" in text:
        scheme, _, text = text.partition("://")
        if scheme.lower() != "kafka":
            raise CliError(
                f"invalid broker address {value!r}: use kafka://host:port[,host:port] "
                f"(scheme {scheme!r} is not supported)"
            )
    parts = [p.strip() for p in text.rstrip("/").split(",") if p.strip()]
    if not parts:
        raise CliError(f"invalid broker address {value!r}: use kafka://host:port[,host:port]")
    for part in parts:
        match = _HOSTPORT.match(part)
        if match is None or not 0 < int(match.group(2)) < 65536:
            raise CliError(
                f"invalid broker address {value!r}: {part!r} is not host:port "
                "(use kafka://host:port[,host:port])"
            )
    return ",".join(parts)


def resolve_bootstrap(cli_value: str | None) -> str:
    """The bootstrap servers for this command: ``--broker``, else ``FLOWS_BROKER``, else the
    embedded broker (started on demand by :mod:`broker.embedded`)."""
    if cli_value:
        bootstrap = parse_broker_url(cli_value)
    elif os.environ.get("FLOWS_BROKER"):
        bootstrap = parse_broker_url(os.environ["FLOWS_BROKER"])
    else:
        try:
            from broker.embedded import resolve_bootstrap as embedded_bootstrap
        except ImportError:
            raise CliError(
                "no broker given: pass --broker kafka://host:port or set FLOWS_BROKER"
            ) from None
        try:
            bootstrap = parse_broker_url(embedded_bootstrap(None))
        except CliError:
            raise
        except Exception as exc:
            raise CliError(
                f"cannot start the embedded broker under ./.flows/ ({exc}); "
                "pass --broker kafka://host:port or set FLOWS_BROKER"
            ) from None
    _current_bootstrap.append(bootstrap)
    return bootstrap


# --- clients --------------------------------------------------------------------------------


@asynccontextmanager
async def admin_client(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client; an unreachable broker becomes a one-line :class:`CliError`."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, client_id=CLIENT_ID, request_timeout_ms=REQUEST_TIMEOUT_MS
    )
    try:
        await admin.start()
    except (KafkaConnectionError, OSError, KafkaTimeoutError):
        await admin.close()
        raise CliError(cannot_connect(bootstrap)) from None
    try:
        yield admin
    finally:
        await admin.close()


@asynccontextmanager
async def producer_client(bootstrap: str, **config: Any) -> AsyncIterator[AIOKafkaProducer]:
    """A started producer (``config`` goes to :class:`aiokafka.AIOKafkaProducer`)."""
    config.setdefault("request_timeout_ms", REQUEST_TIMEOUT_MS)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, client_id=CLIENT_ID, **config)
    try:
        await producer.start()
    except (KafkaConnectionError, OSError, KafkaTimeoutError):
        await producer.stop()
        raise CliError(cannot_connect(bootstrap)) from None
    try:
        yield producer
    finally:
        await producer.stop()


@asynccontextmanager
async def consumer_client(bootstrap: str, **config: Any) -> AsyncIterator[AIOKafkaConsumer]:
    """A started consumer with no subscription (``config`` goes to AIOKafkaConsumer)."""
    config.setdefault("request_timeout_ms", REQUEST_TIMEOUT_MS)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, client_id=CLIENT_ID, **config)
    try:
        await consumer.start()
    except (KafkaConnectionError, OSError, KafkaTimeoutError):
        await consumer.stop()
        raise CliError(cannot_connect(bootstrap)) from None
    try:
        yield consumer
    finally:
        await consumer.stop()


async def fetch_metadata(
    client: AIOKafkaClient | AIOKafkaAdminClient,
    topics: Sequence[str] | None,
    *,
    allow_auto_create: bool = False,
) -> dict[str, Any]:
    """Metadata for ``topics`` (``None``: all topics) as a plain dict.

    Unlike aiokafka's admin helpers this does not create missing topics as a side effect
    (unless ``allow_auto_create``), so asking about a topic never brings it into existence.
    """
    low: AIOKafkaClient = client._client if isinstance(client, AIOKafkaAdminClient) else client
    request = MetadataRequest(
        list(topics) if topics is not None else None, allow_auto_topic_creation=allow_auto_create
    )
    response = await low.send(low.get_random_node(), request)
    result: dict[str, Any] = response.to_object()
    return result


UNKNOWN_TOPIC = 3
LEADER_NOT_AVAILABLE = 5


def unknown_topic(topic: str) -> CliError:
    """The error for a topic the broker does not know."""
    return CliError(
        f"unknown topic {topic!r}: see `flows topics list`, or create it with "
        f"`flows topics create {topic}`"
    )


async def topic_partitions(
    client: AIOKafkaClient | AIOKafkaAdminClient,
    topic: str,
    *,
    allow_auto_create: bool = False,
    attempts: int = 20,
) -> list[int]:
    """The sorted partition ids of ``topic``; :class:`CliError` if it does not exist.

    A topic that is being created (LEADER_NOT_AVAILABLE) is waited for briefly.
    """
    unknown = 0
    for _ in range(attempts):
        meta = await fetch_metadata(client, [topic], allow_auto_create=allow_auto_create)
        entry = next((t for t in meta["topics"] if t["topic"] == topic), None)
        code = entry["error_code"] if entry else UNKNOWN_TOPIC
        if code == 0 and entry and entry["partitions"]:
            return sorted(p["partition"] for p in entry["partitions"])
        if code == UNKNOWN_TOPIC and not allow_auto_create:
            raise unknown_topic(topic)
        if code == UNKNOWN_TOPIC:
            # A broker that creates topics answers LEADER_NOT_AVAILABLE while it does so.
            unknown += 1
            if unknown >= 3:
                break
        if code not in (0, UNKNOWN_TOPIC, LEADER_NOT_AVAILABLE):
            raise CliError(f"cannot use topic {topic!r}: {kafka_error_name(code)}")
        await asyncio.sleep(0.1)
    if allow_auto_create:
        raise CliError(
            f"unknown topic {topic!r} and the broker does not create topics automatically: "
            f"create it with `flows topics create {topic}`"
        )
    raise CliError(f"topic {topic!r} has no leader yet; try again in a moment")


def check_partition(topic: str, partition: int, partitions: Sequence[int]) -> None:
    """:class:`CliError` unless ``partition`` is one of ``partitions``."""
    if partition not in partitions:
        raise CliError(
            f"topic {topic!r} has no partition {partition}: it has partitions "
            f"0..{max(partitions)} (see `flows topics describe {topic}`)"
        )


def parse_key_values(values: Iterable[str], option: str) -> list[tuple[str, str]]:
    """``["a=1", "b=x=y"]`` -> ``[("a", "1"), ("b", "x=y")]``; one-line error otherwise.

    >>> parse_key_values(["retention.ms=1000"], "--config")
    [('retention.ms', '1000')]
    """
    pairs = []
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CliError(f"invalid {option} {item!r}: use {option} key=value")
        pairs.append((key.strip(), value))
    return pairs


# --- output ---------------------------------------------------------------------------------


def print_table(columns: Sequence[str], rows: Iterable[Sequence[object]], title: str = "") -> None:
    """Print rows as a rich table on stdout (plain box characters when piped)."""
    table = Table(*columns, title=title or None, title_justify="left", box=None, pad_edge=False)
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    console.print(table)
