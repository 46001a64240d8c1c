"""Who may call the callback port (actors.callbacks.AllowedSources, peer_host) and the setting
that lists them (``callbacks.allowedSources``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.callbacks import AllowedSources, CallbackSetupError, peer_host
from config import ConfigError
from config.load import load


def test_any_address_without_a_list() -> None:
    anyone = AllowedSources(None)
    assert not anyone.restricted and anyone.allows("203.0.113.9") and anyone.allows(None)
    assert str(anyone) == "any"


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("10.1.2.3", True),
        ("10.2.0.1", False),
        ("127.0.0.1", True),
        ("127.0.0.2", False),  # a bare address is one host
        ("::ffff:10.1.2.3", True),  # IPv4 seen by a dual-stack listener
        ("2001:db8::7", True),
        ("2001:db9::7", False),
        ("::1", False),
        ("not-an-address", False),
        (None, False),
    ],
)
def test_only_listed_networks_may_call(host: str | None, allowed: bool) -> None:
    sources = AllowedSources(["10.1.0.0/16", "127.0.0.1", "2001:db8::/32"])
    assert sources.restricted and sources.allows(host) is allowed


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "slurmctld", "", "10.0.0.1\x00"])
def test_a_bad_entry_fails_the_setup_naming_it(bad: str) -> None:
    with pytest.raises(CallbackSetupError, match="is not an address or a CIDR"):
        AllowedSources(["127.0.0.1", bad])


def test_peer_host_of_transport_peernames() -> None:
    assert peer_host(("10.0.0.5", 40000)) == "10.0.0.5"
    assert peer_host(("fe80::1%eth0", 40000, 0, 2)) == "fe80::1"
    assert peer_host(None) is None and peer_host(("",)) == ""


# --- the setting ---------------------------------------------------------------------------------


def document(tmp_path: Path, **callbacks: Any) -> dict[str, Any]:
    return {
        "wallet": {"privateKeyFile": str(tmp_path / "wallet.key")},
        "slurm": {"ssh": {"address": "login:22", "adminUser": "slurm",
                          "privateKeyFile": str(tmp_path / "ssh_key")}},
        "grpc": {"publicAddress": "supervisor.example.com:443"},
        **({"callbacks": callbacks} if callbacks else {}),
    }  # fmt: skip


def test_unset_means_any_address(tmp_path: Path) -> None:
    assert load(document=document(tmp_path), env={}).config.callbacks.allowed_sources is None


def test_a_yaml_list_is_read_and_written_canonically(tmp_path: Path) -> None:
    doc = document(tmp_path, allowedSources=["10.0.0.7/24", "127.0.0.1", "::1"])
    loaded = load(document=doc, env={})
    assert loaded.config.callbacks.allowed_sources == ("10.0.0.0/24", "127.0.0.1/32", "::1/128")


def test_the_environment_and_flags_take_a_comma_or_space_list(tmp_path: Path) -> None:
    env = {"GRID_SUPERVISOR_CALLBACKS_ALLOWED_SOURCES": "10.0.0.0/24, 127.0.0.1 ::1"}
    loaded = load(document=document(tmp_path), env=env)
    assert loaded.config.callbacks.allowed_sources == ("10.0.0.0/24", "127.0.0.1/32", "::1/128")


@pytest.mark.parametrize(
    "value", [["10.0.0.0/33"], ["slurmctld"], "10.0.0.0/8,nope", [["10.0.0.0/8"]], {"a": 1}, 7]
)
def test_a_bad_list_is_refused_naming_the_key(tmp_path: Path, value: object) -> None:
    with pytest.raises(ConfigError) as caught:
        load(document=document(tmp_path, allowedSources=value), env={})
    assert any("callbacks.allowedSources" in problem for problem in caught.value.problems)


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.text(max_size=60), st.lists(st.text(max_size=30), max_size=5)))
def test_any_value_is_read_or_refused_never_a_crash(value: object) -> None:
    doc = document(Path("/nonexistent"), allowedSources=value)
    try:
        loaded = load(document=doc, env={})
    except ConfigError as error:
        assert error.problems
    else:
        sources = loaded.config.callbacks.allowed_sources
        assert sources is None or AllowedSources(sources).restricted
