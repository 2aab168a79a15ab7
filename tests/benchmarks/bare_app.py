"""The baseline of the benchmark suite: a bare Flask app doing one Redis command per request.

    gunicorn -c python:cacheservice.gunicorn_conf tests.benchmarks.bare_app:app

Same gunicorn settings as the service (``CACHE_WEB_*``), same Redis (``CACHE_REDIS_URL``).
No auth, no limits, no validation, no statistics: what any Redis-backed handler costs.
"""

import json
import os

import redis
from flask import Flask, Response, request

app = Flask(__name__)
store = redis.Redis.from_url(os.environ.get("CACHE_REDIS_URL", "redis://127.0.0.1:6379/0"))


@app.get("/bare/<path:key>")
def get(key: str) -> Response:
    value = store.get(key)  # one GET
    if value is None:
        return Response(b'{"error": "key_not_found"}', 404, mimetype="application/json")
    return Response(value, mimetype="application/json")


@app.post("/bare")
def set_() -> Response:
    body = request.get_json()
    store.set(body["key"], json.dumps(body["value"]), ex=body["ttl"])  # one SET ... EX
    return Response(b'{"created": true}', 201, mimetype="application/json")
