"""A namespace's configuration (``cache_configurations.configuration``) and its rules."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from cacheservice.errors import InvalidRequest
from cacheservice.validation import MAX_TTL_SECONDS

ALGORITHMS = ("none", "gzip", "lz4", "zstd")
STATUSES = ("active", "read_only", "disabled")
# Compression levels each algorithm accepts (None = its default).
LEVELS = {"gzip": (1, 9), "lz4": (0, 16), "zstd": (1, 22)}


@dataclass(frozen=True)
class CompressionConfig:
    algorithm: str = "none"
    level: int | None = None
    min_bytes: int = 256
    # Use the namespace's trained zstd dictionary when one exists.
    dictionary: bool = False


@dataclass(frozen=True)
class NamespaceConfig:
    default_ttl: int = 3600
    max_ttl: int | None = None
    allow_no_expiry: bool = False
    max_value_bytes: int = 1024 * 1024
    refresh_ttl_on_access: bool = False
    compression: CompressionConfig = field(default_factory=CompressionConfig)
    encryption_enabled: bool = False
    status: str = "active"

    def to_body(self) -> dict[str, Any]:
        """The JSON shape of the API and of the ``configuration`` column (status aside)."""
        body = asdict(self)
        body["encryption"] = {"enabled": body.pop("encryption_enabled")}
        return body

    def merged(self, changes: dict[str, Any]) -> NamespaceConfig:
        """A copy with the API's (already schema-checked) fields applied."""
        values = dict(changes)
        compression = self.compression
        if "compression" in values:
            compression = replace(compression, **values.pop("compression"))
        encryption = values.pop("encryption", None)
        config = replace(self, compression=compression, **values)
        if encryption is not None:
            config = replace(config, encryption_enabled=encryption["enabled"])
        return config

    @classmethod
    def from_stored(
        cls, defaults: NamespaceConfig, stored: dict[str, Any], status: str
    ) -> NamespaceConfig:
        """Read a stored configuration; fields it lacks (older rows) take the defaults."""
        known = {name: value for name, value in stored.items() if name in _FIELDS}
        try:
            config = replace(defaults.merged(known), status=status)
            # Keys may be configured elsewhere than here; everything else must hold.
            config.check(encryption_available=True)
        except (TypeError, ValueError, InvalidRequest):
            # A row edited by hand into something invalid: serve the defaults, not 500s.
            return replace(defaults, status=status)
        return config

    def check(self, encryption_available: bool) -> None:
        """The rules the schema cannot express alone; raises the contract's 400."""
        if self.max_ttl is not None and self.default_ttl > self.max_ttl:
            raise InvalidRequest("default_ttl exceeds max_ttl", field="default_ttl")
        level = self.compression.level
        if level is not None and self.compression.algorithm in LEVELS:
            low, high = LEVELS[self.compression.algorithm]
            if not low <= level <= high:
                raise InvalidRequest(
                    f"{self.compression.algorithm} levels are {low}-{high}",
                    field="compression.level",
                )
        if self.compression.dictionary and self.compression.algorithm != "zstd":
            raise InvalidRequest(
                "dictionaries need zstd compression", field="compression.dictionary"
            )
        if self.encryption_enabled and not encryption_available:
            raise InvalidRequest(
                "Encryption cannot be enabled: no keys are configured",
                field="encryption.enabled",
                issue="set CACHE_ENCRYPTION_KEYS on every web process first",
            )

    # Rules applied to each write.

    def ttl_for(self, ttl: int | None, ttl_given: bool) -> int | None:
        """The TTL a write gets: its own, the default, or None (no expiry) where allowed."""
        if not ttl_given:
            return self.default_ttl
        if ttl is None:
            if not self.allow_no_expiry:
                raise InvalidRequest(
                    "This namespace does not allow entries without expiry", field="ttl"
                )
            return None
        self.check_ttl(ttl)
        return ttl

    def check_ttl(self, ttl: int) -> None:
        if self.max_ttl is not None and ttl > self.max_ttl:
            raise InvalidRequest(
                f"ttl exceeds this namespace's max_ttl of {self.max_ttl} s",
                field="ttl",
                max_ttl=self.max_ttl,
            )
        if ttl > MAX_TTL_SECONDS:
            raise InvalidRequest("ttl is too large", field="ttl", max_ttl=MAX_TTL_SECONDS)


_FIELDS = {
    "default_ttl",
    "max_ttl",
    "allow_no_expiry",
    "max_value_bytes",
    "refresh_ttl_on_access",
    "compression",
    "encryption",
}
