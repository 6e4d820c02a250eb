"""The API handler registry.

Each module in this package handles one API family and registers its handlers with
:func:`handles`. The server looks a request's API key up in :data:`REGISTRY`; ApiVersions
answers from it, so the advertised ranges are exactly what is implemented.

A handler is ``async def handler(ctx: RequestContext, request) -> response | None``: it
gets the decoded kio request entity of the client's version and returns the response
entity (build it with ``ctx.respond({...})``), or ``None`` when no response is sent
(Produce with acks=0). Raising :class:`broker.errors.KafkaError` answers that request
with the error code in every error field of the response.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from broker.context import RequestContext

Handler = Callable[["RequestContext", Any], Awaitable[Any]]

__all__ = ["REGISTRY", "ApiSpec", "Handler", "handles", "load_all"]


@dataclass(frozen=True, slots=True)
class ApiSpec:
    api_key: int
    min_version: int
    max_version: int
    handler: Handler


REGISTRY: dict[int, ApiSpec] = {}


def handles(api_key: int, min_version: int, max_version: int) -> Callable[[Handler], Handler]:
    """Register ``handler`` for ``api_key`` over the inclusive version range."""

    def register(handler: Handler) -> Handler:
        if api_key in REGISTRY:
            raise RuntimeError(f"API key {api_key} registered twice ({handler.__qualname__})")
        REGISTRY[api_key] = ApiSpec(api_key, min_version, max_version, handler)
        return handler

    return register


def load_all() -> dict[int, ApiSpec]:
    """Import every handler module so that each registers itself; returns the registry."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return REGISTRY
