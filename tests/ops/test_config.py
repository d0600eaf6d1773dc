"""Typed configuration: every problem reported with its key path, all at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.ops.config import (
    Config,
    ConfigError,
    SimulatorSettings,
    check_config_file,
    load_config,
    parse_config,
    simulator_settings,
)

ROOT = Path(__file__).resolve().parents[2]

BROKEN = """
[logging]
level = "loud"

[smpp]
window = 0
respnse_timeout_s = 3

[carriers.au]
endpoints = [{ host = "127.0.0.1", port = 70000, system_id = "this_is_way_too_long" }]
binds = "two"

[carriers.kddi]
endpoints = []

[[simulators]]
carrier = "au"
queue_full_rate = 1.5
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "denpo.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_every_problem_is_named_by_its_key_path(tmp_path: Path) -> None:
    problems = {p.path: p.message for p in check_config_file(write(tmp_path, BROKEN))}
    assert set(problems) == {
        "logging.level",
        "smpp.window",
        "smpp.respnse_timeout_s",
        "carriers.au.endpoints[0].port",
        "carriers.au.endpoints[0].system_id",
        "carriers.au.binds",
        "carriers.kddi",
        "simulators[0].queue_full_rate",
    }
    assert "'debug', 'info', 'warning', 'error'" in problems["logging.level"] and "'loud'" in problems["logging.level"]
    assert problems["smpp.window"] == "expected int >= 1, got 0"
    assert "did you mean 'response_timeout_s'" in problems["smpp.respnse_timeout_s"]
    assert problems["carriers.au.endpoints[0].port"] == "expected int <= 65535, got 70000"
    assert "length <= 15" in problems["carriers.au.endpoints[0].system_id"]
    assert problems["carriers.au.binds"] == "expected int, got str"
    assert "'au', 'docomo', 'softbank', 'rakuten'" in problems["carriers.kddi"]


def test_missing_required_keys_are_reported(tmp_path: Path) -> None:
    problems = check_config_file(write(tmp_path, "[carriers.docomo]\nendpoints = [{ host = 'h' }]\n"))
    assert {p.path for p in problems} == {"carriers.docomo.endpoints[0].port", "carriers.docomo.endpoints[0].system_id"}
    assert all(p.message == "missing (required)" for p in problems)


def test_cross_key_rules(tmp_path: Path) -> None:
    text = """
[[simulators]]
carrier = "au"
port = 2775
system_id = "only-id"

[[simulators]]
carrier = "au"
port = 2775
"""
    messages = [str(p) for p in check_config_file(write(tmp_path, text))]
    assert any(m.startswith("simulators[0]: set both system_id and password") for m in messages)
    assert any(m.startswith("simulators[1].port: port 2775 already used by simulators[0].port") for m in messages)
    assert any("carrier 'au' has 2 simulators" in m for m in messages)


def test_toml_syntax_error_names_line(tmp_path: Path) -> None:
    (problem,) = check_config_file(write(tmp_path, "[smpp\nwindow = 1\n"))
    assert "TOML syntax" in problem.message and "line 1" in problem.message


def test_unreadable_file() -> None:
    (problem,) = check_config_file("/nonexistent/denpo.toml")
    assert "cannot read" in problem.message


def test_valid_config_is_frozen_and_typed(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """
[smpp]
window = 50

[carriers.au]
bind_mode = "transmitter_receiver"
binds = 2
endpoints = [{ host = "127.0.0.1", port = 2775, system_id = "denpo", password = "pw" }]

[[simulators]]
carrier = "au"
port = 2775
system_id = "denpo"
password = "pw"
""",
        )
    )
    assert isinstance(config, Config)
    assert config.smpp.window == 50 and config.smpp.response_timeout_s == 10.0
    assert config.carriers["au"].endpoints[0].password == "pw"
    assert config.simulators[0].carrier == "au"
    with pytest.raises(AttributeError):
        config.smpp.window = 1  # type: ignore[misc]


def test_shipped_config_files_are_valid() -> None:
    files = sorted((ROOT / "config").glob("*.toml"))
    assert files, "config/ has no TOML file"
    for path in files:
        if path.name == "production.example.toml":
            continue  # needs its secrets: see test_the_production_example_is_valid
        assert check_config_file(path) == [], path


def test_defaults_parse_from_an_empty_file() -> None:
    assert parse_config({}) == Config()


def test_simulator_settings_share_the_checks() -> None:
    assert simulator_settings(carrier="docomo", port=0).carrier == "docomo"
    with pytest.raises(ConfigError) as info:
        simulator_settings(carrier="docomo", reject_rate=2.0, window=0)
    assert {p.path for p in info.value.problems} == {"reject_rate", "window"}
    with pytest.raises(ConfigError):
        simulator_settings(carrier="au", system_id="x")  # a password is needed too
    assert isinstance(simulator_settings(carrier="au"), SimulatorSettings)


def test_check_config_command(tmp_path: Path) -> None:
    bad = subprocess.run(
        [sys.executable, "-m", "engine", "check-config", str(write(tmp_path, BROKEN))],
        capture_output=True, text=True, timeout=60,
    )
    assert bad.returncode == 1
    assert "8 problem(s)" in bad.stderr
    assert "carriers.au.endpoints[0].port: expected int <= 65535, got 70000" in bad.stderr
    good = subprocess.run(
        [sys.executable, "-m", "engine", "check-config", str(ROOT / "config" / "denpo.toml")],
        capture_output=True, text=True, timeout=60,
    )
    assert good.returncode == 0, good.stderr


def test_secrets_from_the_environment_and_files(tmp_path):
    from engine.ops.config import ConfigError, parse_config

    secret = tmp_path / "secret"
    secret.write_text("from-a-file-0123456789\n")
    data = {
        "carriers": {"au": {"endpoints": [{"host": "h", "port": 1, "system_id": "x", "password": {"env": "AU_PW"}}]}},
        "accounts": {"a": {"signing_secret": {"file": str(secret)}}},
    }
    config = parse_config(data, environ={"AU_PW": "pw"})
    assert config.carriers["au"].endpoints[0].password == "pw"
    assert config.accounts["a"].signing_secret == "from-a-file-0123456789"
    data["accounts"]["a"]["signing_secret"] = {"file": str(tmp_path / "missing")}
    data["accounts"]["a"]["token_sha256"] = {"vault": "x"}
    with pytest.raises(ConfigError) as info:
        parse_config(data, environ={})
    text = str(info.value)
    assert "carriers.au.endpoints[0].password: environment variable AU_PW is not set" in text
    assert "accounts.a.signing_secret: cannot read" in text
    assert 'accounts.a.token_sha256: a secret is a value, { env = "NAME" } or { file = "PATH" }' in text


def test_the_production_example_is_valid(tmp_path):
    import tomllib

    from engine.ops.config import parse_config

    names = [f"DENPO_{c}_{k}" for c in ("AU", "DOCOMO", "SOFTBANK", "RAKUTEN") for k in ("SYSTEM_ID", "PASSWORD")]
    env = {n: "pw" if n.endswith("PASSWORD") else "denpo" for n in names}
    env.update(DENPO_ACME_TOKEN_SHA256="0" * 64, DENPO_SHOP_TOKEN_SHA256="1" * 64, DENPO_ACME_SIGNING_SECRET="s" * 32)
    secret = tmp_path / "shop-signing-secret"
    secret.write_text("t" * 32 + "\n")
    text = (ROOT / "config" / "production.example.toml").read_text().replace("/etc/denpo/secrets/shop-signing-secret", str(secret))
    config = parse_config(tomllib.loads(text), environ=env)
    assert config.carriers["au"].endpoints[1].password == "pw" and config.carriers["au"].binds == 4
    assert config.accounts["shop"].signing_secret == "t" * 32
    assert config.http.trusted_proxies == ["10.0.0.0/8"]


def test_the_production_example_names_every_missing_secret():
    from engine.ops.config import ConfigError, load_config

    with pytest.raises(ConfigError) as info:
        load_config(Path(__file__).parents[2] / "config" / "production.example.toml")
    text = str(info.value)
    assert "carriers.au.endpoints[0].password: environment variable DENPO_AU_PASSWORD is not set" in text
    assert "accounts.shop.signing_secret: cannot read /etc/denpo/secrets/shop-signing-secret" in text
