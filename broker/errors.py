"""Errors raised inside the broker.

Two kinds, so that a log line always says whose fault it was:

* :class:`KafkaError` carries a Kafka error code back to the client (the request was
  understood but refused: unknown topic, bad CRC, too large, ...).
* :class:`PeerProtocolError` means the peer sent bytes we cannot frame or parse; the
  connection is closed with a logged reason.

Anything else escaping a handler is our bug: the server logs it and answers
``UNKNOWN_SERVER_ERROR`` for that request without taking the broker down.
"""

from __future__ import annotations

from kio.schema.errors import ErrorCode

__all__ = ["ErrorCode", "KafkaError", "PeerProtocolError"]


class KafkaError(Exception):
    """A refusal that maps to one Kafka error code, with a message for the client and the log."""

    def __init__(self, code: ErrorCode, message: str = "") -> None:
        super().__init__(message or code.name)
        self.code = code
        self.message = message or code.name

    def __repr__(self) -> str:
        return f"KafkaError({self.code.name}, {self.message!r})"


class PeerProtocolError(Exception):
    """Malformed input from the peer: the connection is closed and the reason logged."""
