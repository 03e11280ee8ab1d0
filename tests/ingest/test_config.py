"""The ingest TOML: defaults, relative paths, and errors that name the key."""

from __future__ import annotations

import pytest

from community.ingest.config import ConfigError, load_config


def test_minimal_config_and_paths_relative_to_the_file(tmp_path):
    p = tmp_path / "ingest.toml"
    p.write_text('[ingest]\ncommunity = "demo"\ndatabase_url = "sqlite:///data/q.sqlite"\n'
                 '[mqtt]\nurl = "mqtts://broker.example:8883"\nca = "tls/ca.crt"\n')
    cfg = load_config(p)
    assert cfg.community == "demo" and cfg.step_s == 900 and cfg.batch == 500
    assert cfg.database_url == f"sqlite:///{tmp_path}/data/q.sqlite"
    assert cfg.mqtt.tls and cfg.mqtt.port == 8883 and cfg.mqtt.ca == str(tmp_path / "tls/ca.crt")
    assert cfg.influx is None


@pytest.mark.parametrize("text, message", [
    ('[ingest]\ncommunity = "demo"\nbatsh = 5\n', "unknown key(s) in [ingest]: batsh"),
    ('[ingest]\ncommunity = "demo"\n[broker]\n', "unknown section(s): broker"),
    ('[ingest]\ncommunity = "de mo"\n', "ingest.community"),
    ('[ingest]\ncommunity = "demo"\ninterval = "7m"\n', "ingest.interval"),
    ('[ingest]\ncommunity = "demo"\nlive_every = "soon"\n', "ingest.live_every"),
    ('[ingest]\ncommunity = "demo"\n[mqtt]\nurl = "http://x"\n', "mqtt.url"),
    ('[ingest]\ncommunity = "demo"\n[mqtt]\nprotocol = "4"\n', "mqtt.protocol"),
    ('[ingest]\ncommunity = "demo"\nbatch = 0\n', "ingest.batch"),
    ('[ingest\n', "ingest.toml"),
])
def test_errors_name_the_key(tmp_path, text, message):
    p = tmp_path / "ingest.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        load_config(p)
