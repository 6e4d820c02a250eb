"""ApiVersions (key 18): the versions this broker implements, read from the registry.

Clients send this first (librdkafka, kafkajs and aiokafka with v3, the flexible one) and
pick, per API, the highest version both sides speak. The list is the handler registry
itself, so nothing is advertised that is not implemented. A request of a version above
our maximum never reaches this handler: the codec answers it (v0, UNSUPPORTED_VERSION).
"""

from __future__ import annotations

from typing import Any

from broker.context import RequestContext
from broker.handlers import REGISTRY, handles

API_VERSIONS = 18


@handles(API_VERSIONS, 0, 3)
async def api_versions(ctx: RequestContext, request: Any) -> Any:
    return ctx.respond(
        {
            "error_code": 0,
            "api_keys": [
                {"api_key": k, "min_version": s.min_version, "max_version": s.max_version}
                for k, s in sorted(REGISTRY.items())
            ],
            "throttle_time_ms": 0,
            "finalized_features_epoch": -1,
        }
    )
