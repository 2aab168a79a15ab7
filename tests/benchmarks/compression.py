"""Compression ratio and codec speed for gzip, lz4, zstd and zstd with a trained dictionary.

    python -m tests.benchmarks.compression [--repetitions 7]

Two data sets, generated deterministically from a seeded random:

* 1,000 small JSON user records like the seed's (id, email, name, role, status and a few more
  fields, 200-400 bytes each);
* 100 JSON documents of about 20 KB (an order history with line items and free text).

The dictionary is trained (``codec.train_dictionary``, 16 KiB) on a separate sample drawn from
the same distribution with another seed, never on the records it is measured on. Every value
goes through ``codec.encode`` / ``codec.decode_payload`` with ``min_bytes=0``, so the ratio is
payload bytes over stored bytes including the codec header, and the speeds are payload MB per
second of the whole codec call (JSON serialisation included on the encode side; the ``none``
row is that baseline). Values that a codec does not make smaller are stored uncompressed, as
in the service; "stored compressed" is the share that was not. Speeds are the median of
``--repetitions`` runs of at least 50 ms each.

Prints a Markdown table for BENCHMARKS.md. Needs no Redis.
"""

from __future__ import annotations

import argparse
import math
import platform
import random
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import zstandard

from cacheservice import codec
from cacheservice.codec import Compression, Dictionary
from cacheservice.jsonio import dumps_value


def words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FIRST_NAMES = words(
    "John Jane Maria Ahmed Wei Olga Lucas Emma Noah Ava Liam Mia Yuki Priya Omar Sofia Mateo "
    "Chloe Ivan Fatima Hugo Nora Felix Lena Diego Sara Tom Anna Ravi Elif"
)
LAST_NAMES = words(
    "Doe Smith Garcia Müller Chen Ivanova Silva Rossi Kim Patel Nguyen Kowalski Haddad Jensen "
    "Tanaka Dubois Novak Lopez Brown Wilson Schmidt Costa Sato Moreau Cohen"
)
DOMAINS = ("example.com", "mail.example.org", "travel.example.net", "corp.example.com")
ROLES = ("traveler", "traveler", "traveler", "host", "support", "admin")
STATUSES = ("active", "active", "active", "active", "suspended", "pending_verification")
CITIES = (
    ("Berlin", "DE", "Europe/Berlin"),
    ("Lisbon", "PT", "Europe/Lisbon"),
    ("New York", "US", "America/New_York"),
    ("São Paulo", "BR", "America/Sao_Paulo"),
    ("Tokyo", "JP", "Asia/Tokyo"),
    ("Nairobi", "KE", "Africa/Nairobi"),
    ("Toronto", "CA", "America/Toronto"),
    ("Sydney", "AU", "Australia/Sydney"),
)
LOCALES = ("en-US", "en-GB", "de-DE", "pt-BR", "ja-JP", "fr-FR")
CURRENCIES = ("USD", "EUR", "GBP", "BRL", "JPY")
WORDS = words(
    "room view late checkout breakfast included airport transfer quiet floor near elevator "
    "extra pillows vegetarian meal window seat aisle upgrade requested confirmed pending "
    "refund partial invoice sent guest arrives after midnight please call before arrival "
    "luggage storage parking spot electric charger balcony sea garden city twin double king"
)


def timestamp(rng: random.Random) -> str:
    return (
        f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T"
        f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z"
    )


def user_record(rng: random.Random) -> dict[str, Any]:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    city, country, zone = rng.choice(CITIES)
    return {
        "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "email": f"{first.lower()}.{last.lower()}{rng.randint(1, 999)}@{rng.choice(DOMAINS)}",
        "name": f"{first} {last}",
        "role": rng.choice(ROLES),
        "status": rng.choice(STATUSES),
        "created_at": timestamp(rng),
        "last_login_at": timestamp(rng),
        "locale": rng.choice(LOCALES),
        "timezone": zone,
        "address": {"city": city, "country": country},
        "preferences": {
            "currency": rng.choice(CURRENCIES),
            "newsletter": rng.random() < 0.4,
        },
    }


def small_records(count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    records = [user_record(rng) for _ in range(count)]
    sizes = [len(dumps_value(record)) for record in records]
    assert min(sizes) >= 200, min(sizes)
    assert max(sizes) <= 400, max(sizes)
    return records


def order_document(rng: random.Random, target_bytes: int = 20_000) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "customer": user_record(rng),
        "generated_at": timestamp(rng),
        "orders": [],
    }
    while len(dumps_value(document)) < target_bytes:
        document["orders"].append(
            {
                "order_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "placed_at": timestamp(rng),
                "status": rng.choice(("confirmed", "cancelled", "completed", "refunded")),
                "property": {
                    "name": f"{rng.choice(LAST_NAMES)} {rng.choice(('Hotel', 'Suites', 'Inn'))}",
                    "city": rng.choice(CITIES)[0],
                    "rating": round(rng.uniform(2.5, 5.0), 1),
                },
                "nights": rng.randint(1, 14),
                "total": {
                    "amount": round(rng.uniform(40, 4000), 2),
                    "currency": rng.choice(CURRENCIES),
                },
                "notes": " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 30))),
            }
        )
    return document


def documents(count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [order_document(rng) for _ in range(count)]


@dataclass
class Row:
    data_set: str
    codec_name: str
    level: str
    ratio: float
    compressed_share: float
    encode_mb_s: float
    decode_mb_s: float


def median_seconds(run: Callable[[], object], repetitions: int) -> float:
    """Median time of one ``run``. Each timed repetition loops for at least 50 ms, so that
    timer resolution and scheduler noise do not dominate fast codecs on small data sets."""
    started = time.perf_counter()
    run()
    loops = max(1, math.ceil(0.05 / (time.perf_counter() - started)))
    timings = []
    for _ in range(repetitions):
        started = time.perf_counter()
        for _ in range(loops):
            run()
        timings.append((time.perf_counter() - started) / loops)
    return statistics.median(timings)


def measure(
    data_set: str,
    values: list[dict[str, Any]],
    name: str,
    compression: Compression,
    dictionaries: dict[int, bytes],
    repetitions: int,
) -> Row:
    encoded = [codec.encode(value, "json", compression) for value in values]
    raw = sum(item.raw_bytes for item in encoded)
    stored = sum(item.stored_bytes for item in encoded)
    blobs = [item.blob for item in encoded]
    for value, blob in zip(values, blobs, strict=True):
        assert codec.decode_payload(blob, dictionaries=dictionaries)[1] == dumps_value(value)

    def encode_all() -> None:
        for value in values:
            codec.encode(value, "json", compression)

    def decode_all() -> None:
        for blob in blobs:
            codec.decode_payload(blob, dictionaries=dictionaries)

    megabytes = raw / 1e6
    level = "-" if compression.algorithm == "none" else str(compression.level)
    return Row(
        data_set,
        name,
        level,
        raw / stored,
        sum(item.compression != "none" for item in encoded) / len(encoded),
        megabytes / median_seconds(encode_all, repetitions),
        megabytes / median_seconds(decode_all, repetitions),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repetitions", type=int, default=7)
    arguments = parser.parse_args()

    data_sets = {
        "1,000 user records": (small_records(1000, seed=1), small_records(1000, seed=2)),
        "100 documents (~20 KB)": (documents(100, seed=1), documents(100, seed=2)),
    }
    rows: list[Row] = []
    for dictionary_id, (data_set, (values, training)) in enumerate(data_sets.items(), start=1):
        started = time.perf_counter()
        dictionary = Dictionary(
            dictionary_id, codec.train_dictionary([dumps_value(value) for value in training])
        )
        trained_in = time.perf_counter() - started
        raw = sum(len(dumps_value(value)) for value in values)
        print(
            f"{data_set}: {raw / len(values):.0f} bytes on average; 16 KiB dictionary "
            f"trained on {len(training)} other values in {trained_in:.2f} s"
        )
        dictionaries = {dictionary_id: dictionary.data}
        variants = {
            "none": Compression("none", min_bytes=0),
            "gzip (zlib)": Compression("gzip", level=6, min_bytes=0),
            "lz4 (frame)": Compression("lz4", level=0, min_bytes=0),
            "zstd": Compression("zstd", level=3, min_bytes=0),
            "zstd + dictionary": Compression("zstd", level=3, min_bytes=0, dictionary=dictionary),
        }
        for name, compression in variants.items():
            rows.append(
                measure(data_set, values, name, compression, dictionaries, arguments.repetitions)
            )

    print()
    print(
        f"Python {platform.python_version()}, zstandard {zstandard.__version__} "
        f"(libzstd {'.'.join(map(str, zstandard.ZSTD_VERSION))}), lz4 {version('lz4')}, "
        f"{platform.machine()}, median of {arguments.repetitions} runs"
    )
    print()
    print("| data set | codec | level | ratio | stored compressed | encode MB/s | decode MB/s |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(
            f"| {row.data_set} | {row.codec_name} | {row.level} | {row.ratio:.2f} | "
            f"{row.compressed_share:.0%} | {row.encode_mb_s:.0f} | {row.decode_mb_s:.0f} |"
        )
    small = {row.codec_name: row.ratio for row in rows if row.data_set == "1,000 user records"}
    factor = small["zstd + dictionary"] / small["zstd"]
    verdict = "met" if factor >= 2 else "NOT met"
    print()
    print(
        f"Target (zstd + dictionary >= 2x plain zstd's ratio on the small records): {verdict}, "
        f"{small['zstd + dictionary']:.2f} / {small['zstd']:.2f} = {factor:.2f}x"
    )


if __name__ == "__main__":
    main()
