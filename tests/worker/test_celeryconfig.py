"""The Celery settings: JSON only, at-least-once delivery, no duplicate delayed messages."""

from __future__ import annotations

import pytest

import celeryconfig
from unsign_worker.protocol.exceptions import ConfigError
from unsign_worker.settings import Settings


def test_only_json_is_accepted_and_produced():
    conf = celeryconfig.config_for(Settings())
    assert conf["accept_content"] == ["json"]
    assert conf["task_serializer"] == conf["result_serializer"] == "json"


def test_delivery_is_at_least_once():
    conf = celeryconfig.config_for(Settings())
    assert conf["task_acks_late"] is True
    assert conf["task_reject_on_worker_lost"] is True


def test_the_visibility_timeout_outlasts_the_longest_countdown_and_lease():
    settings = Settings()
    conf = celeryconfig.config_for(settings)
    visibility = conf["broker_transport_options"]["visibility_timeout"]
    assert visibility > settings.retry_countdown_cap_seconds + settings.lease_seconds


def test_settings_refuse_a_visibility_timeout_shorter_than_a_countdown():
    with pytest.raises(ConfigError, match="UNSIGN_VISIBILITY_TIMEOUT"):
        Settings(visibility_timeout_seconds=100, retry_countdown_cap_seconds=300)


def test_broker_keys_live_under_the_project_prefix_and_events_are_on():
    conf = celeryconfig.config_for(Settings(key_prefix="acme:"))
    assert conf["broker_transport_options"]["global_keyprefix"] == "acme:"
    assert conf["worker_send_task_events"] is True
    assert conf["task_routes"]["unsign_worker.unsign"] == {"queue": "unsign"}


def test_a_broker_outage_of_any_length_is_waited_out():
    # Celery's default gives up reconnecting after 100 attempts and the worker stops consuming
    assert celeryconfig.config_for(Settings())["broker_connection_max_retries"] is None
