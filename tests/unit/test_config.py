"""Settings read from the environment."""

from __future__ import annotations

import pytest

from cacheservice.config import ConfigError, Settings


def test_empty_environment_gives_the_defaults() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.database_url == "postgresql://postgres@127.0.0.1:5432/cacheservice"
    assert settings.celery_broker_url == "redis://127.0.0.1:6379/1"
    assert settings.max_body_bytes == 8_388_608
    assert settings.default_ttl == 3600
    assert settings.max_json_depth == 64


def test_variables_are_parsed() -> None:
    settings = Settings.from_env(
        {
            "CACHE_REDIS_URL": "redis://redis:6380/3",
            "CACHE_DATABASE_URL": "postgresql://u@db/x",
            "CELERY_BROKER_URL": "redis://redis:6380/4",
            "CACHE_REDIS_SOCKET_TIMEOUT": "1.5",
            "CACHE_NAMESPACE_BUCKETS": "32",
            "CACHE_DEFAULT_TTL": "60",
            "CACHE_MAX_VALUE_BYTES": "2048",
            "CACHE_MAX_BODY_BYTES": "4096",
            "CACHE_LOG_LEVEL": "debug",
            "CACHE_WEB_WORKERS": "4",
            "CACHE_WEB_ACCESS_LOG": "-",
        }
    )
    assert settings.redis_url == "redis://redis:6380/3"
    assert settings.database_url == "postgresql://u@db/x"
    assert settings.celery_broker_url == "redis://redis:6380/4"
    assert settings.redis_socket_timeout == 1.5
    assert settings.namespace_buckets == 32
    assert settings.default_ttl == 60
    assert settings.max_value_bytes == 2048
    assert settings.max_body_bytes == 4096
    assert settings.log_level == "DEBUG"
    assert settings.web_workers == 4
    assert settings.web_access_log == "-"


def test_empty_strings_mean_the_default() -> None:
    settings = Settings.from_env(
        {"CACHE_REDIS_URL": "", "CACHE_DEFAULT_TTL": "", "CACHE_WEB_ACCESS_LOG": ""}
    )
    assert settings.redis_url == Settings.redis_url
    assert settings.default_ttl == 3600
    assert settings.web_access_log is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CACHE_DEFAULT_TTL", "abc"),
        ("CACHE_DEFAULT_TTL", "1.5"),
        ("CACHE_DEFAULT_TTL", "0"),
        ("CACHE_NAMESPACE_BUCKETS", "0"),
        ("CACHE_MAX_BODY_BYTES", "1023"),
        ("CACHE_MAX_JSON_DEPTH", "1"),
        ("CACHE_WEB_WORKERS", "-1"),
        ("CACHE_REDIS_SOCKET_TIMEOUT", "soon"),
        ("CACHE_REDIS_SOCKET_TIMEOUT", "0"),
        ("CACHE_REDIS_CONNECT_TIMEOUT", "-0.5"),
    ],
)
def test_bad_values_raise_config_error_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_with_overrides_replaces_fields() -> None:
    settings = Settings().with_overrides({"default_ttl": 5, "max_body_bytes": 2048})
    assert settings.default_ttl == 5
    assert settings.max_body_bytes == 2048
    assert Settings().default_ttl == 3600


def test_with_overrides_refuses_unknown_settings() -> None:
    with pytest.raises(ConfigError, match="no_such_setting"):
        Settings().with_overrides({"no_such_setting": 1})
