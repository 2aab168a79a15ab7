"""JSON in and out of the service.

Request bodies are parsed with the standard library because it keeps integers exact (orjson
turns integers beyond 64 bits into floats, which would silently change a cached value); output
is written with orjson, which is several times faster and embeds stored JSON text unchanged
through ``orjson.Fragment``.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

from cacheservice.errors import InvalidRequest
from cacheservice.validation import check_json_depth


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    # 1e400 parses to inf, which JSON cannot represent and orjson would write as null.
    if math.isinf(value):
        raise ValueError(f"number {text[:40]} is out of the range of a double")
    return value


def loads_request(data: bytes, max_depth: int) -> Any:
    """Parse a request body, or raise the contract's 400 with the reason."""
    try:
        text = data.decode("utf-8")
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise InvalidRequest(
            "JSON nesting is too deep", issue=f"JSON may nest at most {max_depth} levels"
        ) from None
    except (UnicodeDecodeError, ValueError) as exc:
        # ValueError covers JSONDecodeError and integers beyond Python's digit limit.
        raise InvalidRequest("Request body is not valid JSON", issue=str(exc)[:200]) from None
    check_json_depth(value, max_depth)
    return value


def dumps_value(value: Any) -> bytes:
    """Serialise a cached JSON value to compact UTF-8 JSON text.

    Integers beyond 64 bits are valid JSON that orjson cannot write; they fall back to the
    standard library. Lone surrogates cannot be UTF-8 and are refused.
    """
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        if "surrogates" not in str(exc):
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
            try:
                return text.encode("utf-8")
            except UnicodeEncodeError:
                # orjson stops at the first problem: the big integer can hide a surrogate.
                pass
        raise InvalidRequest(
            "Value contains a lone UTF-16 surrogate", issue="strings must be valid Unicode"
        ) from None


def dumps_response(body: Any) -> bytes:
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:
        # Validation messages key list items by index (``{"tags": {0: [...]}}``); only error
        # bodies take this slower path.
        return orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
