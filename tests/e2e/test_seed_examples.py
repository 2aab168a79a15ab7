"""The seed document's curl examples for endpoints 1-6, run verbatim with the real curl.

Each example below is copied literally from ``seed/cache-service-spec.md`` (its "Example
Usage" block), with its documented response. Only the host changes: ``https://api.delivery.com``
becomes the e2e server. The response must carry every field the seed's response shows.
Tests may run on either xdist worker in any order, so each first runs the examples that
create the data it reads (the seed's set and batch-set examples).
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

SEED_HOST = "https://api.delivery.com"
CURL_TIMEOUT_SECONDS = 30
USER_0 = "user:550e8400-e29b-41d4-a716-446655440000"
USER_1 = "user:550e8400-e29b-41d4-a716-446655440001"
USER_2 = "user:550e8400-e29b-41d4-a716-446655440002"

# fmt: off
GET_CURL = r'''
curl -X GET "https://api.delivery.com/cache/user:550e8400-e29b-41d4-a716-446655440000?namespace=users&include_metadata=true"
'''

GET_RESPONSE = '''
{
  "key": "user:550e8400-e29b-41d4-a716-446655440000",
  "value": {
    "id": "550e8400-e29b-41d4-a716-446655440000",
    "email": "user@example.com",
    "name": "John Doe",
    "role": "traveler",
    "status": "active"
  },
  "namespace": "users",
  "ttl": 3600,
  "created_at": "2024-01-15T12:30:00Z",
  "expires_at": "2024-01-15T13:30:00Z",
  "hit_count": 5,
  "last_accessed": "2024-01-15T14:30:00Z"
}
'''

SET_CURL = r'''
curl -X POST https://api.delivery.com/cache \
  -H "Content-Type: application/json" \
  -H "Authorization: Bearer jwt_token_here" \
  -d '{
    "key": "user:550e8400-e29b-41d4-a716-446655440000",
    "value": {
      "id": "550e8400-e29b-41d4-a716-446655440000",
      "email": "user@example.com",
      "name": "John Doe",
      "role": "traveler",
      "status": "active"
    },
    "namespace": "users",
    "ttl": 3600,
    "tags": ["user", "profile"],
    "overwrite": true
  }'
'''

SET_RESPONSE = '''
{
  "key": "user:550e8400-e29b-41d4-a716-446655440000",
  "namespace": "users",
  "ttl": 3600,
  "created": true,
  "created_at": "2024-01-15T14:30:00Z",
  "expires_at": "2024-01-15T15:30:00Z"
}
'''

DELETE_CURL = r'''
curl -X DELETE "https://api.delivery.com/cache/user:550e8400-e29b-41d4-a716-446655440000?namespace=users"
'''

DELETE_RESPONSE = '''
{
  "key": "user:550e8400-e29b-41d4-a716-446655440000",
  "namespace": "users",
  "deleted": true,
  "deleted_at": "2024-01-15T14:30:00Z"
}
'''

BATCH_GET_CURL = r'''
curl -X POST https://api.delivery.com/cache/batch \
  -H "Content-Type: application/json" \
  -H "Authorization: Bearer jwt_token_here" \
  -d '{
    "keys": [
      "user:550e8400-e29b-41d4-a716-446655440000",
      "user:550e8400-e29b-41d4-a716-446655440001",
      "user:550e8400-e29b-41d4-a716-446655440002"
    ],
    "namespace": "users",
    "include_metadata": true
  }'
'''

BATCH_GET_RESPONSE = '''
{
  "entries": [
    {
      "key": "user:550e8400-e29b-41d4-a716-446655440000",
      "value": {
        "id": "550e8400-e29b-41d4-a716-446655440000",
        "email": "user@example.com",
        "name": "John Doe",
        "role": "traveler",
        "status": "active"
      },
      "namespace": "users",
      "ttl": 3600,
      "created_at": "2024-01-15T12:30:00Z",
      "expires_at": "2024-01-15T13:30:00Z",
      "hit_count": 5,
      "last_accessed": "2024-01-15T14:30:00Z"
    },
    {
      "key": "user:550e8400-e29b-41d4-a716-446655440001",
      "value": {
        "id": "550e8400-e29b-41d4-a716-446655440001",
        "email": "user2@example.com",
        "name": "Jane Smith",
        "role": "courier",
        "status": "active"
      },
      "namespace": "users",
      "ttl": 3600,
      "created_at": "2024-01-15T12:30:00Z",
      "expires_at": "2024-01-15T13:30:00Z",
      "hit_count": 3,
      "last_accessed": "2024-01-15T14:30:00Z"
    }
  ],
  "missing_keys": [
    "user:550e8400-e29b-41d4-a716-446655440002"
  ],
  "total_requested": 3,
  "total_found": 2
}
'''

BATCH_SET_CURL = r'''
curl -X POST https://api.delivery.com/cache/batch-set \
  -H "Content-Type: application/json" \
  -H "Authorization: Bearer jwt_token_here" \
  -d '{
    "entries": [
      {
        "key": "user:550e8400-e29b-41d4-a716-446655440000",
        "value": {
          "id": "550e8400-e29b-41d4-a716-446655440000",
          "email": "user@example.com",
          "name": "John Doe",
          "role": "traveler",
          "status": "active"
        },
        "ttl": 3600,
        "tags": ["user", "profile"]
      },
      {
        "key": "user:550e8400-e29b-41d4-a716-446655440001",
        "value": {
          "id": "550e8400-e29b-41d4-a716-446655440001",
          "email": "user2@example.com",
          "name": "Jane Smith",
          "role": "courier",
          "status": "active"
        },
        "ttl": 3600,
        "tags": ["user", "profile"]
      }
    ],
    "namespace": "users",
    "overwrite": true
  }'
'''

BATCH_SET_RESPONSE = '''
{
  "entries": [
    {
      "key": "user:550e8400-e29b-41d4-a716-446655440000",
      "created": true,
      "created_at": "2024-01-15T14:30:00Z",
      "expires_at": "2024-01-15T15:30:00Z"
    },
    {
      "key": "user:550e8400-e29b-41d4-a716-446655440001",
      "created": true,
      "created_at": "2024-01-15T14:30:00Z",
      "expires_at": "2024-01-15T15:30:00Z"
    }
  ],
  "total_created": 2,
  "total_failed": 0
}
'''

INVALIDATE_CURL = r'''
curl -X POST https://api.delivery.com/cache/invalidate \
  -H "Content-Type: application/json" \
  -H "Authorization: Bearer jwt_token_here" \
  -d '{
    "tags": ["user", "profile"],
    "namespace": "users",
    "pattern": "user:*"
  }'
'''

INVALIDATE_RESPONSE = '''
{
  "invalidated_keys": [
    "user:550e8400-e29b-41d4-a716-446655440000",
    "user:550e8400-e29b-41d4-a716-446655440001",
    "user:550e8400-e29b-41d4-a716-446655440002"
  ],
  "total_invalidated": 3,
  "invalidated_at": "2024-01-15T14:30:00Z"
}
'''

# fmt: on


@dataclass(frozen=True)
class Example:
    name: str
    curl: str
    response: str
    # Examples run first so that this one finds data.
    setup: tuple[str, ...] = ()


EXAMPLES = {
    example.name: example
    for example in (
        Example("set", SET_CURL, SET_RESPONSE),
        Example("batch-set", BATCH_SET_CURL, BATCH_SET_RESPONSE),
        Example("get", GET_CURL, GET_RESPONSE, setup=("set",)),
        Example("batch", BATCH_GET_CURL, BATCH_GET_RESPONSE, setup=("batch-set",)),
        Example("invalidate", INVALIDATE_CURL, INVALIDATE_RESPONSE, setup=("batch-set",)),
        Example("delete", DELETE_CURL, DELETE_RESPONSE, setup=("set",)),
    )
}


def curl_arguments(example: str, base_url: str) -> list[str]:
    """The example's argv, pointed at ``base_url``, writing the body to a file."""
    arguments = shlex.split(example.strip().replace("\\\n", " "))
    assert arguments[0] == "curl"
    arguments = [argument.replace(SEED_HOST, base_url) for argument in arguments]
    assert any(argument.startswith(base_url) for argument in arguments), "the example names no URL"
    return arguments


def run_curl(example: Example, base_url: str, body_path: Path) -> tuple[int, Any]:
    """Run the example with curl; returns the HTTP status and the JSON body."""
    curl = shutil.which("curl")
    assert curl is not None, "these tests need the curl binary on PATH"
    arguments = curl_arguments(example.curl, base_url)
    command = [
        curl,
        "-sS",
        "-o",
        str(body_path),
        "-w",
        "%{http_code}",
        "--max-time",
        "30",
        *arguments[1:],
    ]
    finished = subprocess.run(
        command, capture_output=True, text=True, timeout=CURL_TIMEOUT_SECONDS + 10, check=False
    )
    assert finished.returncode == 0, f"curl exited {finished.returncode}: {finished.stderr}"
    return int(finished.stdout), json.loads(body_path.read_bytes())


def assert_has_fields(documented: Any, actual: Any, path: str = "$") -> None:
    """Every field of the documented response is in the actual one, at every level."""
    if isinstance(documented, dict):
        assert isinstance(actual, dict), f"{path} is not an object: {actual!r}"
        missing = set(documented) - set(actual)
        assert not missing, f"{path} lacks {sorted(missing)}"
        for name, value in documented.items():
            assert_has_fields(value, actual[name], f"{path}.{name}")
    elif isinstance(documented, list):
        assert isinstance(actual, list), f"{path} is not an array: {actual!r}"
        if documented and isinstance(documented[0], dict):
            assert actual, f"{path} is empty"
            for index, item in enumerate(actual):
                assert_has_fields(documented[0], item, f"{path}[{index}]")


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_seed_example(name: str, base_url: str, tmp_path: Path) -> None:
    example = EXAMPLES[name]
    for setup_name in example.setup:
        status, body = run_curl(EXAMPLES[setup_name], base_url, tmp_path / f"{setup_name}.json")
        assert 200 <= status < 300, (setup_name, status, body)

    status, body = run_curl(example, base_url, tmp_path / "body.json")

    assert 200 <= status < 300, (status, body)
    documented = json.loads(example.response)
    assert_has_fields(documented, body)
    check_meaning(name, documented, body)


def check_meaning(name: str, documented: dict[str, Any], body: dict[str, Any]) -> None:
    """Beyond the field names: the values the seed's example implies."""
    if name in ("set", "get", "delete"):
        assert (body["key"], body["namespace"]) == (USER_0, "users")
    if name == "set":
        assert body["ttl"] == 3600
    elif name == "get":
        assert body["value"] == documented["value"]
        assert body["ttl"] == 3600
        assert body["hit_count"] >= 1
    elif name == "delete":
        assert body["deleted"] is True
    elif name == "batch-set":
        assert [entry["key"] for entry in body["entries"]] == [USER_0, USER_1]
        assert body["total_failed"] == 0
    elif name == "batch":
        assert [entry["value"] for entry in body["entries"]] == [
            entry["value"] for entry in documented["entries"]
        ]
        assert body["missing_keys"] == [USER_2]
        assert (body["total_requested"], body["total_found"]) == (3, 2)
    elif name == "invalidate":
        # The batch-set example's two entries carry both tags and match "user:*".
        assert set(body["invalidated_keys"]) == {USER_0, USER_1}
        assert body["total_invalidated"] == 2
