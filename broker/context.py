"""What a handler sees of the request it is answering."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kio.index import load_response_schema

from broker.protocol import build

if TYPE_CHECKING:
    from broker.node import BrokerNode


@dataclass(slots=True)
class RequestContext:
    """One request: the broker it arrived at, how it arrived, and its header fields."""

    node: BrokerNode
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    listener: str
    """Name of the listener the connection came in through (e.g. ``PLAINTEXT``)."""
    peer: str
    """``host:port`` of the client, for logs."""

    def respond(self, values: dict[str, Any]) -> Any:
        """Build the response entity of this request's API and version from plain values."""
        return build(_response_class(self.api_key, self.api_version), values)


@functools.cache
def _response_class(api_key: int, api_version: int) -> type:
    return load_response_schema(api_key, api_version)
