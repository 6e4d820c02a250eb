"""Build version-specific kio entities from plain Python values.

kio generates one dataclass per API version, each with its own nested classes. Handlers
are written once, against the newest shape, and describe a response as plain dicts,
lists, ints and strings; :func:`build` turns that into the entity class of the version
the client asked for. Time fields may be given by kio's name (``throttle_time``) or the
Kafka docs' name (``throttle_time_ms``). Keys a version does not have are dropped, fields
the handler did not give get a neutral value (0, "", None, empty), and the Kafka
conventions that kio
types more strictly are converted: millisecond ints become ``timedelta`` for
``*Timedelta`` fields, ``-1`` or an int becomes ``None`` or a UTC ``datetime`` for
timestamp fields, and ints become :class:`ErrorCode`.

>>> from kio.index import load_response_schema
>>> resp = build(load_response_schema(18, 1), {"error_code": 0, "api_keys": [
...     {"api_key": 0, "min_version": 3, "max_version": 9}], "throttle_time_ms": 5})
>>> resp.api_keys[0].max_version, resp.throttle_time.total_seconds()
(9, 0.005)
"""

from __future__ import annotations

import dataclasses
import datetime
import types
import typing
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.primitive import TZAware, i32Timedelta, i64Timedelta

__all__ = ["build", "field_names"]

_Converter = Callable[[Any], Any]
_UTC = datetime.UTC
_Plan = tuple[tuple[str, str, _Converter, Any], ...]
_plans: dict[type, _Plan] = {}


def build(cls: type, values: Mapping[str, Any]) -> Any:
    """Construct ``cls`` (a kio entity class) from ``values``; see the module docstring."""
    plan = _plans.get(cls)
    if plan is None:
        plan = _plans[cls] = _make_plan(cls)
    kwargs = {}
    for name, alias, convert, default in plan:
        value = values.get(name, _MISSING)
        if value is _MISSING:
            value = values.get(alias, _MISSING)
        kwargs[name] = default if value is _MISSING else convert(value)
    return cls(**kwargs)


def field_names(cls: type) -> frozenset[str]:
    """The field names of one entity version (to test whether a version has a field)."""
    return frozenset(f.name for f in dataclasses.fields(cls))


_MISSING = object()


def _make_plan(cls: type) -> _Plan:
    hints = typing.get_type_hints(cls)
    plan = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = _neutral(tp)
        # kio drops the "_ms" of time fields; accept the Kafka docs' name too.
        plan.append((f.name, f.name + "_ms", _converter(tp), default))
    return tuple(plan)


def _identity(value: Any) -> Any:
    return value


def _optional_inner(tp: Any) -> tuple[Any, bool]:
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _converter(tp: Any) -> _Converter:
    inner, optional = _optional_inner(tp)
    convert = _required_converter(inner)
    if optional and convert is not _identity:
        return lambda v: None if v is None else convert(v)
    return convert


def _required_converter(inner: Any) -> _Converter:
    if typing.get_origin(inner) is tuple:
        item_tp = typing.get_args(inner)[0]
        item_convert = _converter(item_tp)
        if item_convert is _identity:
            return tuple
        return lambda items: tuple(item_convert(item) for item in items)
    if dataclasses.is_dataclass(inner):
        entity_cls = typing.cast(type, inner)
        return lambda v: v if isinstance(v, entity_cls) else build(entity_cls, v)
    if inner is ErrorCode:
        return lambda v: v if isinstance(v, ErrorCode) else ErrorCode(v)
    if isinstance(inner, type) and issubclass(inner, (i32Timedelta, i64Timedelta)):
        return lambda v: (
            v if isinstance(v, datetime.timedelta) else datetime.timedelta(milliseconds=v)
        )
    if inner is TZAware:
        return _timestamp
    return _identity


def _timestamp(value: Any) -> datetime.datetime | None:
    if value is None or isinstance(value, datetime.datetime):
        return value
    if value < 0:
        return None
    return datetime.datetime.fromtimestamp(value / 1000, tz=_UTC)


def _neutral(tp: Any) -> Any:
    inner, optional = _optional_inner(tp)
    if optional:
        return None
    if typing.get_origin(inner) is tuple:
        return ()
    if inner is ErrorCode:
        return ErrorCode.none
    if isinstance(inner, type):
        if issubclass(inner, datetime.timedelta):
            return datetime.timedelta(0)
        if issubclass(inner, bool):
            return False
        if issubclass(inner, int):
            return 0
        if issubclass(inner, float):
            return 0.0
        if issubclass(inner, str):
            return ""
        if issubclass(inner, bytes):
            return b""
        if issubclass(inner, uuid.UUID):
            return uuid.UUID(int=0)
        if dataclasses.is_dataclass(inner):
            return build(inner, {})
    return None
