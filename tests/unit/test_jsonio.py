"""Request JSON parsing and value serialisation."""

from __future__ import annotations

import json

import pytest

from cacheservice.errors import InvalidRequest
from cacheservice.jsonio import dumps_response, dumps_value, loads_request

DEPTH = 64


def test_big_integers_stay_exact() -> None:
    value = loads_request(b'{"big": 1180591620717411303424, "neg": -1180591620717411303425}', DEPTH)
    assert value == {"big": 2**70, "neg": -(2**70) - 1}
    assert isinstance(value["big"], int)
    assert dumps_value(value) == b'{"big":1180591620717411303424,"neg":-1180591620717411303425}'


def test_floats_and_small_values_round_trip() -> None:
    text = b'{"f":0.1,"e":1e-07,"i":9007199254740993,"t":true,"n":null,"s":"\xc3\xa9"}'
    value = loads_request(text, DEPTH)
    assert value["i"] == 9007199254740993
    assert json.loads(dumps_value(value)) == value
    # Non-ASCII text is written as UTF-8, not as \u escapes.
    assert "é".encode() in dumps_value(value)


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity", b"[1, NaN]"])
def test_non_finite_numbers_are_rejected(constant: bytes) -> None:
    with pytest.raises(InvalidRequest) as caught:
        loads_request(constant, DEPTH)
    assert caught.value.message == "Request body is not valid JSON"


@pytest.mark.parametrize("body", [b"{", b"{'a': 1}", b"[1,]", b"", b"\xff\xfe"])
def test_malformed_or_non_utf8_bodies_are_rejected(body: bytes) -> None:
    with pytest.raises(InvalidRequest):
        loads_request(body, DEPTH)


def test_integer_beyond_digit_limit_is_a_400_not_a_crash() -> None:
    with pytest.raises(InvalidRequest):
        loads_request(b"1" * 5000, DEPTH)


def test_depth_limit_applies_to_the_whole_body() -> None:
    assert loads_request(b"[" * DEPTH + b"]" * DEPTH, DEPTH) is not None
    with pytest.raises(InvalidRequest) as caught:
        loads_request(b"[" * (DEPTH + 1) + b"]" * (DEPTH + 1), DEPTH)
    assert caught.value.message == "JSON nesting is too deep"


def test_ten_thousand_levels_raise_invalid_request_not_recursion_error() -> None:
    for body in (b"[" * 10_000 + b"]" * 10_000, b'{"a":' * 10_000 + b"1" + b"}" * 10_000):
        with pytest.raises(InvalidRequest) as caught:
            loads_request(body, DEPTH)
        assert caught.value.message == "JSON nesting is too deep"


def test_lone_surrogate_parses_but_cannot_be_stored() -> None:
    value = loads_request(b'{"s": "\\ud800"}', DEPTH)
    assert value == {"s": "\ud800"}
    with pytest.raises(InvalidRequest) as caught:
        dumps_value(value)
    assert "surrogate" in caught.value.message


def test_surrogate_pair_escape_is_one_character() -> None:
    value = loads_request(b'"\\ud83d\\ude42"', DEPTH)
    assert value == "🙂"
    assert dumps_value(value) == '"🙂"'.encode()


def test_big_integer_fallback_still_refuses_surrogates() -> None:
    with pytest.raises(InvalidRequest):
        dumps_value([2**70, "\udfff"])


def test_dumps_response_is_compact_json() -> None:
    assert dumps_response({"a": [1, None, True]}) == b'{"a":[1,null,true]}'
