"""The settings of serving many users (`nemo_mcp.scale`): defaults, values, and one
sentence naming the variable when a value is unusable."""

from __future__ import annotations

import pytest

from nemo_mcp.errors import ConfigError
from nemo_mcp.scale import Scale
from nemo_mcp.settings import settings_from_env


def test_defaults_bound_users_and_leave_limits_and_metrics_off() -> None:
    scale = settings_from_env({}).scale
    assert scale == Scale()
    assert (scale.max_users, scale.user_idle_seconds) == (1000, 600.0)
    assert scale.credits_per_day is None and scale.calls_per_minute is None
    assert scale.metrics is None and scale.log_format == "text"


def test_values_are_read() -> None:
    scale = settings_from_env(
        {
            "NEMO_MAX_USERS": "50",
            "NEMO_USER_IDLE_SECONDS": "30",
            "NEMO_REDIS_MAX_CONNECTIONS": "8",
            "NEMO_REDIS_TIMEOUT": "0.5",
            "NEMO_REDIS_CLUSTER": "1",
            "NEMO_CREDITS_PER_DAY": "500",
            "NEMO_CALLS_PER_MINUTE": "off",
            "NEMO_METRICS": "9464",
            "NEMO_LOG_FORMAT": "JSON",
        }
    ).scale
    assert scale == Scale(
        max_users=50,
        user_idle_seconds=30.0,
        redis_max_connections=8,
        redis_timeout=0.5,
        redis_cluster=True,
        credits_per_day=500,
        calls_per_minute=None,
        metrics=9464,
        log_format="json",
    )
    assert settings_from_env({"NEMO_METRICS": "/metrics"}).scale.metrics == "/metrics"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("NEMO_MAX_USERS", "0"),
        ("NEMO_MAX_USERS", "many"),
        ("NEMO_USER_IDLE_SECONDS", "-1"),
        ("NEMO_REDIS_TIMEOUT", "soon"),
        ("NEMO_REDIS_CLUSTER", "maybe"),
        ("NEMO_CREDITS_PER_DAY", "1.5"),
        ("NEMO_METRICS", "metrics"),
        ("NEMO_LOG_FORMAT", "xml"),
    ],
)
def test_an_unusable_value_is_one_sentence_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        settings_from_env({name: value})
    assert name in str(refused.value) and repr(value) in str(refused.value)
