"""Settings mirror the spec's defaults, load from TOML and the environment, and refuse bad input
with a ConfigError that names the field and what is allowed; secrets never reach a repr."""

from __future__ import annotations

from pathlib import Path

import pytest

import phantom_notebook as pn
from phantom_notebook import ConfigError, QueueSettings, RedisSettings, RetrySettings, Settings
from phantom_notebook.core.backend.connection import open_client

# -- defaults ---------------------------------------------------------------------------------


def test_queue_defaults_mirror_the_spec_production_configuration() -> None:
    qs = QueueSettings()
    assert qs.max_queue_size == 100_000
    assert qs.dead_letter_ttl_s == 7 * 24 * 3600
    assert qs.enable_dead_letter is True
    assert qs.deduplication_window_s == 300
    assert qs.max_payload_bytes == 1024 * 1024


def test_retry_defaults_are_three_exponential_retries_from_1s_to_60s_doubling() -> None:
    retry = QueueSettings().retry
    assert retry == RetrySettings()
    assert (retry.max_retries, retry.backoff_strategy) == (3, "exponential")
    assert (retry.initial_delay_s, retry.max_delay_s, retry.multiplier) == (1.0, 60.0, 2.0)


def test_redis_defaults_mean_the_embedded_server_under_prefix_pn() -> None:
    redis = RedisSettings()
    assert redis.url is None
    assert redis.key_prefix == "pn"


def test_a_queue_without_an_override_gets_the_defaults() -> None:
    settings = Settings()
    assert settings.for_queue("anything") == settings.queue_defaults == QueueSettings()


# -- loading ----------------------------------------------------------------------------------


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "phantom.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_settings_load_every_section_from_a_toml_file(tmp_path: Path) -> None:
    path = write_toml(tmp_path, """
[redis]
url = "redis://cache.internal:6380/2"
key_prefix = "soc"
max_connections = 20

[queue_defaults]
max_queue_size = 5000
visibility_timeout_s = 12.5

[queue_defaults.retry]
backoff_strategy = "linear"
max_retries = 4

[queues.ioc]
kind = "fifo"
enable_deduplication = true
""")
    settings = Settings.load(path, env={})
    assert settings.redis.url == "redis://cache.internal:6380/2"
    assert settings.redis.key_prefix == "soc"
    assert settings.redis.max_connections == 20
    assert settings.queue_defaults.max_queue_size == 5000
    assert settings.queue_defaults.visibility_timeout_s == 12.5
    assert settings.queue_defaults.retry.backoff_strategy == "linear"
    assert settings.queue_defaults.retry.max_retries == 4
    assert settings.for_queue("ioc").kind == "fifo"
    assert settings.for_queue("ioc").enable_deduplication is True


def test_a_per_queue_override_keeps_every_default_it_does_not_mention(tmp_path: Path) -> None:
    path = write_toml(tmp_path, """
[queue_defaults]
max_queue_size = 5000
message_ttl_s = 3600

[queues.alerts]
max_queue_size = 50
""")
    alerts = Settings.load(path, env={}).for_queue("alerts")
    assert alerts.max_queue_size == 50
    assert alerts.message_ttl_s == 3600
    assert alerts.kind == QueueSettings().kind


def test_a_per_queue_retry_override_is_merged_over_the_default_retry(tmp_path: Path) -> None:
    path = write_toml(tmp_path, """
[queue_defaults.retry]
initial_delay_s = 2.0
max_retries = 7

[queues.ioc.retry]
max_retries = 1
""")
    retry = Settings.load(path, env={}).for_queue("ioc").retry
    assert retry.max_retries == 1
    assert retry.initial_delay_s == 2.0


def test_the_settings_file_can_be_named_by_phantom_settings(tmp_path: Path) -> None:
    path = write_toml(tmp_path, '[redis]\nkey_prefix = "from-file"\n')
    settings = Settings.load(env={"PHANTOM_SETTINGS": str(path)})
    assert settings.redis.key_prefix == "from-file"


def test_environment_variables_override_redis_and_queue_default_fields() -> None:
    settings = Settings.load(env={
        "PHANTOM_REDIS_URL": "rediss://redis.example:6380/0",
        "PHANTOM_REDIS_KEY_PREFIX": "team-a",
        "PHANTOM_REDIS_MAX_CONNECTIONS": "8",
        "PHANTOM_QUEUE_MAX_QUEUE_SIZE": "5000",
        "PHANTOM_QUEUE_VISIBILITY_TIMEOUT_S": "2.5",
        "PHANTOM_QUEUE_ENABLE_DEDUPLICATION": "yes",
        "PHANTOM_QUEUE_KIND": "fifo",
        "PHANTOM_QUEUE_MESSAGE_TTL_S": "none",
    })
    assert settings.redis.url == "rediss://redis.example:6380/0"
    assert settings.redis.key_prefix == "team-a"
    assert settings.redis.max_connections == 8
    assert settings.queue_defaults.max_queue_size == 5000
    assert settings.queue_defaults.visibility_timeout_s == 2.5
    assert settings.queue_defaults.enable_deduplication is True
    assert settings.queue_defaults.kind == "fifo"
    assert settings.queue_defaults.message_ttl_s is None


def test_environment_variables_win_over_the_file(tmp_path: Path) -> None:
    path = write_toml(tmp_path, """
[redis]
url = "redis://file-host:6379/0"

[queue_defaults]
max_queue_size = 10
""")
    settings = Settings.load(path, env={"PHANTOM_REDIS_URL": "redis://env-host:6379/0",
                                        "PHANTOM_QUEUE_MAX_QUEUE_SIZE": "20"})
    assert settings.redis.url == "redis://env-host:6379/0"
    assert settings.queue_defaults.max_queue_size == 20


def test_an_environment_default_reaches_queues_that_have_their_own_override(
        tmp_path: Path) -> None:
    path = write_toml(tmp_path, '[queues.ioc]\nkind = "fifo"\n')
    settings = Settings.load(path, env={"PHANTOM_QUEUE_MAX_QUEUE_SIZE": "20"})
    assert settings.for_queue("ioc").max_queue_size == 20
    assert settings.for_queue("ioc").kind == "fifo"


def test_loading_with_an_empty_environment_and_no_file_gives_the_defaults() -> None:
    assert Settings.load(env={}) == Settings()


# -- invalid values ---------------------------------------------------------------------------


def config_error(text: str, tmp_path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        Settings.load(write_toml(tmp_path, text), env={})
    return info.value


@pytest.mark.parametrize(("toml", "field", "allowed"), [
    pytest.param('[queues.ioc.retry]\nbackoff_strategy = "quadratic"',
                 "queues.ioc.retry.backoff_strategy", "fixed, linear, exponential",
                 id="bad literal in a nested table"),
    pytest.param('[queue_defaults]\nkind = "lifo"', "queue_defaults.kind",
                 "fifo, priority, delayed, pubsub, broadcast", id="bad queue kind"),
    pytest.param('[queue_defaults]\nexpired_action = "ignore"', "queue_defaults.expired_action",
                 "dead_letter, drop", id="bad expired action"),
    pytest.param('[queues.ioc]\ndurability = "paranoid"', "queues.ioc.durability",
                 "none, replicated, fsync", id="bad durability"),
    pytest.param("[queue_defaults]\nmax_queue_size = -1", "queue_defaults.max_queue_size",
                 "a positive number", id="negative queue size"),
    pytest.param("[queues.ioc]\nvisibility_timeout_s = 0", "queues.ioc.visibility_timeout_s",
                 "a positive number", id="zero visibility timeout"),
    pytest.param("[queues.ioc.retry]\nmax_retries = -2", "queues.ioc.retry.max_retries",
                 "a finite number >= 0", id="negative retries"),
    pytest.param("[queue_defaults.retry]\nmultiplier = 0.5",
                 "queue_defaults.retry.multiplier", "a finite number >= 1", id="shrinking backoff"),
    pytest.param("[queue_defaults.retry]\njitter = 1.5", "queue_defaults.retry.jitter",
                 "0.0 .. 1.0", id="jitter over 100%"),
    pytest.param("[redis]\nmax_connections = -5", "redis.max_connections",
                 "a positive number", id="negative pool size"),
    pytest.param('[queue_defaults]\nmax_queue_size = "lots"', "queue_defaults.max_queue_size",
                 "a number", id="non-number string"),
    pytest.param("[queue_defaults]\nmax_queue_size = 10.5", "queue_defaults.max_queue_size",
                 "a number", id="fraction for an integer"),
    pytest.param("[queue_defaults]\nmax_queue_size = true", "queue_defaults.max_queue_size",
                 "a number", id="boolean for a number"),
    pytest.param('[queue_defaults]\nenable_dead_letter = "maybe"',
                 "queue_defaults.enable_dead_letter", "true, false", id="non-boolean string"),
    pytest.param("[redis]\nkey_prefix = 7", "redis.key_prefix", "a string", id="number prefix"),
    pytest.param('[redis]\nkey_prefix = "a{b}"', "redis.key_prefix", "without braces",
                 id="hash tag in prefix"),
    pytest.param("[queues.ioc.retry]\nmax_retry = 3", "queues.ioc.retry.max_retry",
                 "max_retries", id="unknown nested field"),
    pytest.param("[queue_defaults]\nmax_size = 3", "queue_defaults.max_size",
                 "max_queue_size", id="unknown queue field"),
    pytest.param("[redis]\nhost = 'localhost'", "redis.host", "url", id="unknown redis field"),
    pytest.param("[redis_cluster]\nnodes = 3", "redis_cluster",
                 "acl, queue_defaults, queues, redis, roles, security", id="unknown section"),
    pytest.param('[redis]\nurl = "http://cache:6379"', "redis.url",
                 "redis://, rediss://, unix://", id="bad url scheme"),
    pytest.param("redis = 5", "redis", None, id="section that is not a table"),
    pytest.param("[queues]\nioc = 5", "queues.ioc", None, id="queue override not a table"),
    pytest.param("queues = 5", "queues", None, id="queues that is not a table"),
    pytest.param("[queue_defaults]\nvisibility_timeout_s = nan",
                 "queue_defaults.visibility_timeout_s", "a positive number", id="nan timeout"),
    pytest.param("[queue_defaults]\nmax_payload_bytes = inf",
                 "queue_defaults.max_payload_bytes", "a number", id="infinite payload limit"),
])
def test_an_invalid_value_names_its_field_path_and_the_allowed_values(
        tmp_path: Path, toml: str, field: str, allowed: str | None) -> None:
    error = config_error(toml, tmp_path)
    assert error.field == field
    assert repr(field) in str(error)
    if allowed is not None:
        assert allowed in str(error)


def test_an_invalid_environment_value_names_the_field_it_overrides() -> None:
    with pytest.raises(ConfigError, match="queue_defaults.max_queue_size.*not a number"):
        Settings.load(env={"PHANTOM_QUEUE_MAX_QUEUE_SIZE": "lots"})


def test_an_invalid_url_from_the_environment_is_refused_with_the_allowed_schemes() -> None:
    with pytest.raises(ConfigError, match=r"redis\.url.*allowed: redis://, rediss://, unix://"):
        Settings.load(env={"PHANTOM_REDIS_URL": "memcached://cache:11211"})


def test_a_missing_settings_file_is_a_config_error_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="does not exist") as info:
        Settings.load(missing, env={})
    assert str(missing) in str(info.value)


def test_a_file_that_is_not_toml_is_a_config_error_naming_the_path(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[redis\nurl = ")
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        Settings.load(path, env={})
    assert str(path) in str(info.value)


def test_config_errors_are_value_errors_and_phantom_errors() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_dict({"queue_defaults": {"kind": "lifo"}})
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, pn.PhantomError)


@pytest.mark.parametrize(("build", "field"), [
    pytest.param(lambda: RetrySettings(max_retries=-1), "retry.max_retries", id="retries"),
    pytest.param(lambda: RetrySettings(jitter=-0.1), "retry.jitter", id="jitter"),
    pytest.param(lambda: QueueSettings(max_queue_size=0), "queue.max_queue_size", id="size"),
    pytest.param(lambda: RedisSettings(url="ftp://h"), "redis.url", id="scheme"),
    pytest.param(lambda: RedisSettings(key_prefix=""), "redis.key_prefix", id="prefix"),
    pytest.param(lambda: RetrySettings(backoff_strategy="quadratic"),  # type: ignore[arg-type]
                 "retry.backoff_strategy", id="strategy"),
    pytest.param(lambda: QueueSettings(kind="lifo"),  # type: ignore[arg-type]
                 "queue.kind", id="kind"),
])
def test_settings_built_in_code_are_validated_like_loaded_ones(build, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        build()
    assert info.value.field == field


# -- replace ----------------------------------------------------------------------------------


def test_queue_settings_replace_returns_a_changed_copy_and_leaves_the_original() -> None:
    original = QueueSettings()
    changed = original.replace(max_queue_size=10, kind="fifo", retry={"max_retries": 1})
    assert (changed.max_queue_size, changed.kind, changed.retry.max_retries) == (10, "fifo", 1)
    assert original == QueueSettings()


@pytest.mark.parametrize(("changes", "field"), [
    ({"max_queue_size": -5}, "queue.max_queue_size"),
    ({"kind": "lifo"}, "queue.kind"),
    ({"visibility_timeout_s": "soon"}, "queue.visibility_timeout_s"),
    ({"no_such_field": 1}, "queue.no_such_field"),
    ({"retry": {"backoff_strategy": "random"}}, "queue.retry.backoff_strategy"),
])
def test_queue_settings_replace_validates_the_changes(changes: dict, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        QueueSettings().replace(**changes)
    assert info.value.field == field


# -- secrets ----------------------------------------------------------------------------------

SECRET_URLS = [
    "redis://:s3cret@h:6379/0",
    "redis://analyst:s3cret@h:6379/0",
    "rediss://analyst:s3cret@redis.example/1",
    "redis://h:6379/0?password=s3cret",
]


@pytest.mark.parametrize("url", SECRET_URLS)
def test_redis_settings_repr_never_shows_the_password(url: str) -> None:
    assert "s3cret" not in repr(RedisSettings(url=url))


@pytest.mark.parametrize("url", SECRET_URLS)
def test_settings_repr_and_str_never_show_the_password(url: str) -> None:
    settings = Settings(redis=RedisSettings(url=url))
    assert "s3cret" not in repr(settings)
    assert "s3cret" not in str(settings)


def test_the_masked_repr_still_says_where_redis_is() -> None:
    text = repr(RedisSettings(url="redis://analyst:s3cret@cache.internal:6380/0"))
    assert "analyst" in text and "cache.internal:6380" in text and "***" in text


@pytest.mark.parametrize("url", SECRET_URLS[:3])
def test_a_message_queue_repr_never_shows_the_password(url: str) -> None:
    settings = Settings.from_dict({"redis": {"url": url}})
    mq = pn.MessageQueue(open_client(settings.redis), settings)  # nothing sent yet
    try:
        assert "s3cret" not in repr(mq)
    finally:
        mq.client.close()


@pytest.mark.parametrize("url", SECRET_URLS[:3])
def test_an_unreachable_server_is_reported_at_connect_without_the_password(url: str) -> None:
    with pytest.raises(pn.ConnectionLostError, match="cannot reach") as info:
        pn.connect(url.replace("@h:6379", "@127.0.0.1:1").replace("redis.example", "127.0.0.1:1"),
                   settings=Settings(), connect_timeout_s=1.0)
    assert "s3cret" not in str(info.value)


def test_a_config_error_about_a_url_never_shows_its_password() -> None:
    with pytest.raises(ConfigError) as info:
        RedisSettings(url="http://:s3cret@h:6379/0")
    assert "s3cret" not in str(info.value)
