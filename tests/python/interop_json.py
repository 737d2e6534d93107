"""Canonical JSON form of Arrow rows, shared by the interop scripts.

Every peer (delta-rs, DuckDB, and MediLake's Rust tests) turns the rows it reads
into this form, so two reads of one table compare equal exactly when they hold
the same values. The rules (also in tests/python/README.md):

* null                      -> null (at any depth)
* bool                      -> true / false
* int8/16/32/64             -> JSON integer, exact (int64 extremes included)
* float32/float64           -> JSON number; float32 is widened to float64 exactly
                               first. NaN, +inf, -inf -> the strings "NaN",
                               "Infinity", "-Infinity". -0.0 stays -0.0.
* decimal(p, s)             -> string in plain notation with exactly s fractional
                               digits and no exponent: "-12.30", "0.0000000001",
                               "5" when s = 0
* string                    -> string (UTF-8, emitted unescaped)
* binary                    -> standard base64 with padding ("" for empty)
* date                      -> "YYYY-MM-DD"
* timestamp with a zone     -> "YYYY-MM-DDTHH:MM:SS.ffffffZ" in UTC (6 digits)
* timestamp without a zone  -> "YYYY-MM-DDTHH:MM:SS.ffffff" (6 digits, no zone)
* list / large list         -> array
* struct                    -> object keyed by field name
* map                       -> object key -> value; a non-string key is turned
                               into its canonical form, then into JSON text if
                               that is not a string
* a row                     -> object keyed by column name

A canonical line is `json.dumps(row, sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`; a canonical row set is the list of rows ordered by those
lines (Python string order, i.e. by code point).
"""

from __future__ import annotations

import base64
import datetime as _dt
import decimal
import json
import math
from typing import Any

import pyarrow as pa

_UTC = _dt.timezone.utc


def _float(v: float) -> Any:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return float(v)


def _decimal(v: decimal.Decimal, scale: int) -> str:
    with decimal.localcontext() as ctx:
        ctx.prec = 100
        q = v.quantize(decimal.Decimal(1).scaleb(-scale)) if scale > 0 else v.quantize(decimal.Decimal(1))
        return format(q, "f")


def _fmt_datetime(v: _dt.datetime) -> str:
    # Manual formatting: strftime('%Y') does not zero-pad years below 1000.
    return (
        f"{v.year:04d}-{v.month:02d}-{v.day:02d}T"
        f"{v.hour:02d}:{v.minute:02d}:{v.second:02d}.{v.microsecond:06d}"
    )


def _timestamp(v: Any, tz: str | None) -> str:
    if not isinstance(v, _dt.datetime):
        # pandas.Timestamp for ns units when pandas is present; plain datetimes otherwise.
        v = v.to_pydatetime()
    if tz is not None:
        if v.tzinfo is None:
            v = v.replace(tzinfo=_UTC)
        return _fmt_datetime(v.astimezone(_UTC)) + "Z"
    return _fmt_datetime(v.replace(tzinfo=None))


def value(v: Any, t: pa.DataType) -> Any:
    """Canonical JSON value of one Arrow value `v` (as `to_pylist` gives it) of type `t`."""
    if v is None:
        return None
    if pa.types.is_dictionary(t):
        return value(v, t.value_type)
    if pa.types.is_boolean(t):
        return bool(v)
    if pa.types.is_integer(t):
        return int(v)
    if pa.types.is_floating(t):
        return _float(float(v))
    if pa.types.is_decimal(t):
        return _decimal(v, t.scale)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or _is(t, "is_string_view"):
        return str(v)
    if (
        pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_fixed_size_binary(t)
        or _is(t, "is_binary_view")
    ):
        return base64.b64encode(bytes(v)).decode("ascii")
    if pa.types.is_date(t):
        return v.isoformat()
    if pa.types.is_timestamp(t):
        return _timestamp(v, t.tz)
    if pa.types.is_time(t):
        return v.isoformat(timespec="microseconds")
    if pa.types.is_map(t):
        out = {}
        for k, item in v:
            key = value(k, t.key_type)
            if not isinstance(key, str):
                key = json.dumps(key, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            out[key] = value(item, t.item_type)
        return out
    if (
        pa.types.is_list(t)
        or pa.types.is_large_list(t)
        or pa.types.is_fixed_size_list(t)
        or _is(t, "is_list_view")
        or _is(t, "is_large_list_view")
    ):
        return [value(x, t.value_type) for x in v]
    if pa.types.is_struct(t):
        return {t.field(i).name: value(v.get(t.field(i).name), t.field(i).type) for i in range(t.num_fields)}
    if pa.types.is_null(t):
        return None
    raise TypeError(f"no canonical JSON form for Arrow type {t}")


def _is(t: pa.DataType, name: str) -> bool:
    f = getattr(pa.types, name, None)
    return bool(f and f(t))


def line(row: dict) -> str:
    """The canonical JSON text of one normalised row."""
    return json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def rows(table: pa.Table) -> list[dict]:
    """All rows of `table` in canonical form, ordered by their canonical lines."""
    # Struct values from to_pylist are dicts; maps are lists of (key, value) tuples.
    cols = [(f.name, f.type, table.column(i).to_pylist()) for i, f in enumerate(table.schema)]
    out = []
    for r in range(table.num_rows):
        out.append({name: value(col[r], t) for name, t, col in cols})
    out.sort(key=line)
    return out
