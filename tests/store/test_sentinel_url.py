"""Sentinel URLs: one convention for the state store and the broker, errors naming the rule."""

from __future__ import annotations

import ssl

import pytest

import celeryconfig
from unsign_worker.producers.producer import producer_app
from unsign_worker.protocol.exceptions import ConfigError
from unsign_worker.settings import Settings
from unsign_worker.store.sentinel import kombu_broker, parse_sentinel_url

URL = "redis+sentinel://:s3cret@10.0.0.1:26379,10.0.0.2:26380,sentinel-3/mymaster/2"
BASE_ENV = {"ALIPAY_PARTNER": "2088101122136241", "ALIPAY_KEY": "a" * 32}


def test_a_sentinel_url_names_the_sentinels_the_master_the_db_and_the_password():
    target = parse_sentinel_url(URL)
    assert target.hosts == (("10.0.0.1", 26379), ("10.0.0.2", 26380), ("sentinel-3", 26379))
    assert (target.master, target.db, target.password, target.tls) == ("mymaster", 2, "s3cret",
                                                                       False)
    assert target.sentinel_kwargs() == {"password": "s3cret"}
    assert "s3cret" not in repr(target)


def test_tls_verifies_certificates_and_the_sentinels_may_take_no_password():
    target = parse_sentinel_url("rediss+sentinel://u:p@h1:1,h2:2/m?ssl_ca_certs=/ca.pem"
                                "&sentinel_auth=none")
    kwargs = target.connection_kwargs()
    assert kwargs["ssl"] is True and kwargs["ssl_cert_reqs"] == ssl.CERT_REQUIRED
    assert kwargs["ssl_ca_certs"] == "/ca.pem" and kwargs["username"] == "u"
    assert "password" not in target.sentinel_kwargs()


@pytest.mark.parametrize(("url", "rule"), [
    ("redis+sentinel://h1:26379", "/<master name>"),
    ("redis+sentinel://h1:26379/m/x", "not a number"),
    ("redis+sentinel://h1:99999/m", "host:port"),
    ("redis+sentinel:///m", "at least one sentinel"),
    ("redis+sentinel://h1/m?ssl_ca_certs=/ca.pem", "rediss+sentinel"),
    ("redis+sentinel://h1/m?password=x", "unknown Sentinel URL parameter"),
])
def test_a_malformed_sentinel_url_is_refused_with_its_rule(url, rule):
    with pytest.raises(ConfigError, match="UNSIGN_REDIS_URL") as caught:
        Settings.from_env({**BASE_ENV, "UNSIGN_REDIS_URL": url}, load_dotenv=False)
    assert rule in str(caught.value)


def test_the_broker_is_kombus_sentinel_transport_with_master_name():
    broker, options, use_ssl = kombu_broker(URL)
    assert broker == ("sentinel://:s3cret@10.0.0.1:26379/2;sentinel://:s3cret@10.0.0.2:26380/2;"
                      "sentinel://:s3cret@sentinel-3:26379/2")
    assert not broker.endswith(";")  # Celery would add a localhost entry
    assert options == {"master_name": "mymaster", "sentinel_kwargs": {"password": "s3cret"}}
    assert use_ssl is None
    _, _, use_ssl = kombu_broker("rediss+sentinel://h1/m?ssl_ca_certs=/ca.pem")
    assert use_ssl == {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": "/ca.pem"}


def test_workers_and_producers_get_the_same_sentinel_broker():
    settings = Settings.from_env({**BASE_ENV, "UNSIGN_REDIS_URL": URL}, load_dotenv=False)
    conf = celeryconfig.config_for(settings)
    assert conf["broker_url"].startswith("sentinel://")
    assert conf["broker_transport_options"]["master_name"] == "mymaster"
    assert conf["broker_transport_options"]["global_keyprefix"] == settings.key_prefix
    app = producer_app(URL, "p:")
    assert app.conf.broker_url == conf["broker_url"]
    assert app.conf.broker_transport_options["master_name"] == "mymaster"


def test_replica_acknowledgements_default_to_one_with_sentinel_and_none_without():
    sentinel = Settings.from_env({**BASE_ENV, "UNSIGN_REDIS_URL": URL}, load_dotenv=False)
    plain = Settings.from_env(BASE_ENV, load_dotenv=False)
    assert (sentinel.replica_acks, plain.replica_acks) == (1, 0)
    assert sentinel.replica_wait_ms == 1000
    override = Settings.from_env({**BASE_ENV, "UNSIGN_REDIS_URL": URL,
                                  "UNSIGN_REPLICA_ACKS": "0"}, load_dotenv=False)
    assert override.replica_acks == 0


def test_a_sentinel_urls_password_is_never_shown():
    from unsign_worker.protocol.hosts import redact_url

    assert "s3cret" not in redact_url(URL) and "********" in redact_url(URL)
    settings = Settings.from_env({**BASE_ENV, "UNSIGN_REDIS_URL": URL}, load_dotenv=False)
    assert "s3cret" not in repr(settings)
    with pytest.raises(ConfigError) as caught:
        parse_sentinel_url("redis+sentinel://:s3cret@h1:bad/m")
    assert "s3cret" not in str(caught.value)
