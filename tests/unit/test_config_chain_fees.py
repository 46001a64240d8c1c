"""chain.fees and chain.gasLimit: read from every source, checked, and handed to the sender."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from actors.chain.transactions import SenderSettings, sender_settings_from_config
from config import config_from_mapping, load
from config.settings import LEAF_BY_KEY
from config.show import plain_value
from config.values import GasLimit, parse_gas_limit

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"
WALLET_KEY = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


@pytest.fixture
def document(tmp_path: Path) -> dict[str, object]:
    wallet = tmp_path / "wallet.key"
    wallet.write_text(WALLET_KEY + "\n")
    ssh = tmp_path / "ssh_key"
    ssh.write_text("not read by the loader\n")
    return {
        "wallet": {"privateKeyFile": str(wallet)},
        "slurm": {
            "ssh": {"address": "127.0.0.1:2222", "adminUser": "slurm", "privateKeyFile": str(ssh)}
        },
        "grpc": {"publicAddress": "127.0.0.1:3000"},
    }


def test_the_defaults_estimate_the_gas_and_choose_the_fees_by_the_node(
    document: dict[str, object],
) -> None:
    cfg = config_from_mapping(document)
    assert cfg.chain.fees == "auto"
    assert cfg.chain.gas_limit == "estimate" and cfg.chain.gas_limit.fixed is None
    settings = sender_settings_from_config(cfg.chain)
    assert (settings.fees, settings.gas_limit) == ("auto", None)
    assert settings == SenderSettings()


def test_the_go_supervisors_habits_from_a_file(document: dict[str, object]) -> None:
    document["chain"] = {"fees": "legacy", "gasLimit": 20_000_000}
    cfg = config_from_mapping(document)
    assert cfg.chain.fees == "legacy"
    assert cfg.chain.gas_limit.fixed == 20_000_000
    base = SenderSettings(resend_after=3.0)
    settings = sender_settings_from_config(cfg.chain, base)
    assert (settings.fees, settings.gas_limit, settings.resend_after) == ("legacy", 20_000_000, 3.0)


def test_from_the_environment_and_flags(document: dict[str, object]) -> None:
    env = {"GRID_SUPERVISOR_CHAIN_FEES": "EIP1559", "GRID_SUPERVISOR_CHAIN_GAS_LIMIT": "500000"}
    cfg = load(document=document, env=env, flags={}).config
    assert (cfg.chain.fees, cfg.chain.gas_limit.fixed) == ("eip1559", 500_000)
    flags = {"chain.gasLimit": "estimate", "chain.fees": "legacy"}
    cfg = load(document=document, env=env, flags=flags).config
    assert (cfg.chain.fees, cfg.chain.gas_limit.fixed) == ("legacy", None)
    leaf = LEAF_BY_KEY["chain.gasLimit"]
    assert "--chain.gas-limit" in leaf.flags and leaf.metavar == "estimate|GAS"
    assert LEAF_BY_KEY["chain.fees"].metavar == "{auto,legacy,eip1559}"


def test_gas_limits_parse_and_show_back() -> None:
    assert parse_gas_limit(" Estimate ") == GasLimit("estimate")
    assert parse_gas_limit(21_000).fixed == 21_000
    assert parse_gas_limit("20_000_000").fixed == 20_000_000
    for bad in (True, 20_999, 2**63, 1.5, "", None):
        with pytest.raises(ValueError, match="expected estimate or a whole number"):
            parse_gas_limit(bad)
    assert plain_value(parse_gas_limit(30_000_000)) == "30000000"


def test_the_example_file_sets_both_to_their_defaults() -> None:
    example = yaml.safe_load(EXAMPLE.read_text())
    assert example["chain"]["fees"] == "auto"
    assert example["chain"]["gasLimit"] == "estimate"
