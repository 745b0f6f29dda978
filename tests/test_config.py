"""Settings parsing: defaults, every variable, and a typed error naming the bad one."""

import platformdirs
import pytest
from cryptography.fernet import Fernet

from redtick.config import Settings, parse_duration
from redtick.errors import ConfigurationError


def test_nothing_set_means_the_local_store_in_the_user_data_directory():
    settings = Settings.from_env({})
    assert settings.local and not settings.in_memory and settings.topology == "local"
    assert settings.namespace == "redtick"
    assert settings.intervals == ("1m", "5m", "15m", "1h", "4h", "1d")
    assert settings.home == platformdirs.user_data_dir("redtick", appauthor=False)
    assert settings.safe_url == f"local store {settings.home}"
    assert settings.tick_retention_ms is None and settings.candle_retention_ms is None


def test_redtick_home_is_where_the_store_lives(tmp_path):
    settings = Settings.from_env({"REDTICK_HOME": str(tmp_path / "store")})
    assert settings.home == str(tmp_path / "store") and settings.local


@pytest.mark.parametrize("variable", ["REDIS_PORT", "REDIS_DB", "REDIS_USERNAME", "REDIS_PASSWORD", "REDIS_SSL"])
def test_a_server_variable_without_host_means_localhost(variable):
    value = {"REDIS_PORT": "6390", "REDIS_DB": "2", "REDIS_SSL": "true"}.get(variable, "someone")
    settings = Settings.from_env({variable: value})
    assert settings.host == "localhost" and not settings.local and settings.topology == "single"


def test_url_selects_a_server_and_hides_the_password():
    settings = Settings.from_env({"REDIS_URL": "redis://:hunter2@cache.internal:6380/3"})
    assert not settings.in_memory
    assert "hunter2" not in settings.safe_url and "hunter2" not in repr(settings)
    assert settings.safe_url == "redis://cache.internal:6380/3"


def test_host_port_db_password_pool():
    settings = Settings.from_env(
        {"REDIS_HOST": "10.0.0.5", "REDIS_PORT": "6390", "REDIS_DB": "2", "REDIS_PASSWORD": "s3cret",
         "REDIS_MAX_CONNECTIONS": "50", "REDIS_SSL": "true"}
    )
    assert (settings.host, settings.port, settings.db, settings.max_connections) == ("10.0.0.5", 6390, 2, 50)
    assert settings.ssl and not settings.in_memory
    assert settings.safe_url == "rediss://10.0.0.5:6390/2"
    assert "s3cret" not in repr(settings)


def test_memory_url_selects_the_in_process_fakeredis():
    settings = Settings.from_env({"REDIS_URL": "memory://"})
    assert settings.in_memory and not settings.local and settings.topology == "memory"
    assert "does not persist" not in settings.safe_url and "lives as long as this process" in settings.safe_url


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"REDIS_PORT": "sixty"}, "REDIS_PORT"),
        ({"REDIS_PORT": "70000"}, "REDIS_PORT"),
        ({"REDIS_DB": "-1"}, "REDIS_DB"),
        ({"REDIS_MAX_CONNECTIONS": "0"}, "REDIS_MAX_CONNECTIONS"),
        ({"REDIS_URL": "http://localhost"}, "REDIS_URL"),
        ({"REDIS_URL": "redis://host:notaport/0"}, "REDIS_URL"),
        ({"REDIS_SSL": "maybe"}, "REDIS_SSL"),
        ({"REDIS_SSL_CA_CERTS": "/nonexistent/ca.pem"}, "REDIS_SSL_CA_CERTS"),
        ({"REDIS_SOCKET_TIMEOUT": "0"}, "REDIS_SOCKET_TIMEOUT"),
        ({"REDTICK_NAMESPACE": "Bad Namespace"}, "REDTICK_NAMESPACE"),
        ({"REDTICK_ENCRYPTION_KEY": "not-a-key"}, "REDTICK_ENCRYPTION_KEY"),
        ({"REDTICK_INTERVALS": "1m,fortnight"}, "REDTICK_INTERVALS"),
        ({"REDTICK_TICK_RETENTION": "3 days"}, "REDTICK_TICK_RETENTION"),
    ],
)
def test_bad_value_names_the_variable(env, variable):
    with pytest.raises(ConfigurationError, match=variable):
        Settings.from_env(env)


def test_encryption_key_is_accepted_and_never_shown():
    key = Fernet.generate_key().decode()
    settings = Settings.from_env({"REDTICK_ENCRYPTION_KEY": key, "REDTICK_ADMIN_TOKEN": "adm1n"})
    assert settings.encryption_key == key
    assert key not in repr(settings) and "adm1n" not in repr(settings)


def test_retention_can_be_switched_off():
    settings = Settings.from_env({"REDTICK_TICK_RETENTION": "off", "REDTICK_CANDLE_RETENTION": "30d"})
    assert settings.tick_retention_ms is None
    assert settings.candle_retention_ms == 30 * 86_400_000


@pytest.mark.parametrize(("text", "ms"), [("500ms", 500), ("30s", 30_000), ("5m", 300_000), ("4h", 14_400_000),
                                           ("1d", 86_400_000), ("1w", 604_800_000)])
def test_parse_duration(text, ms):
    assert parse_duration(text) == ms


@pytest.mark.parametrize("text", ["", "0m", "5", "m", "1.5h", "-1d", None, 5])
def test_parse_duration_rejects(text):
    with pytest.raises(ConfigurationError):
        parse_duration(text)
