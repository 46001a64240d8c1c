"""The configuration: schema defaults, sources and precedence, validation, offline checks."""

from __future__ import annotations

import argparse
import base64
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import asyncssh
import pytest
import yaml

from config import (
    ConfigError,
    LoadedConfig,
    Secret,
    add_config_arguments,
    config_from_mapping,
    load,
    load_from_args,
    provider_address,
    verify_offline,
)
from config.load import flag_values
from config.settings import ENV_CONFIG_FILE, LEAF_BY_ENV, LEAVES
from config.values import (
    check_user_template,
    format_duration,
    normalise_label,
    parse_duration,
    parse_eth_address,
    parse_int,
    parse_listen_address,
    parse_path,
    parse_ssh_address,
    parse_wallet_key,
    parse_wei,
    render_user_template,
)

# anvil's first account: a well-known test key, never a real one.
WALLET_KEY = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
WALLET_ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    """A wallet key file, an OpenSSH private key and a known-hosts file, all freshly made."""
    wallet = tmp_path / "wallet.key"
    wallet.write_text("0x" + WALLET_KEY + "\n")
    ssh_key = asyncssh.generate_private_key("ssh-ed25519")
    ssh = tmp_path / "ssh_key"
    ssh.write_bytes(ssh_key.export_private_key())
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_bytes(b"[127.0.0.1]:2222 " + ssh_key.export_public_key())
    return {"wallet": wallet, "ssh": ssh, "known_hosts": known_hosts}


@pytest.fixture
def document(keys: dict[str, Path]) -> dict[str, object]:
    """The smallest valid configuration: only what has no default."""
    return {
        "wallet": {"privateKeyFile": str(keys["wallet"])},
        "slurm": {
            "ssh": {
                "address": "127.0.0.1:2222",
                "adminUser": "slurm",
                "privateKeyFile": str(keys["ssh"]),
            }
        },
        "grpc": {"publicAddress": "127.0.0.1:3000"},
    }


def write_yaml(path: Path, document: object) -> Path:
    path.write_text(yaml.safe_dump(document))
    return path


def problems_of(excinfo: pytest.ExceptionInfo[ConfigError]) -> str:
    return "\n".join(excinfo.value.problems)


# --------------------------------------------------------------------------- defaults


def test_minimal_document_gets_the_go_defaults(document: dict[str, object]) -> None:
    cfg = config_from_mapping(document)
    assert cfg.prices.cpu_per_min == 950_000_000_000_000_000
    assert cfg.prices.gpu_per_min == 8_500_000_000_000_000_000
    assert cfg.prices.mem_per_min == 80_000_000_000_000
    assert cfg.slurm.partition == "main"
    assert cfg.slurm.commands.sacct == "/usr/bin/sacct"
    assert cfg.grpc.listen_address == "0.0.0.0:3000"
    assert cfg.benchmark.time_limit == timedelta(hours=24)
    assert cfg.benchmark.run_as == "root"
    assert cfg.benchmark.hpl.image == "registry-1.deepsquare.run#library/hpc-benchmarks:23.5"
    assert cfg.benchmark.speedtest.image == "registry-1.docker.io#gists/speedtest-cli:1.2.0"
    assert cfg.chain.metascheduler_address == "0x3707aB457CF457275b7ec32e203c54df80C299d5"
    assert cfg.sbatch.tls.enable is True
    assert cfg.slurm.ssh.disable_host_key_check is False
    assert cfg.state.folder == Path("/var/lib/grid-supervisor")
    assert (cfg.log.level, cfg.log.format) == ("info", "human")
    assert cfg.metrics.listen_address is None
    assert (cfg.slurm.ssh.address.host, cfg.slurm.ssh.address.port) == ("127.0.0.1", 2222)


def test_every_leaf_has_help_and_unique_names() -> None:
    env_names = [name for leaf in LEAVES for name in leaf.env_names]
    flags = [flag for leaf in LEAVES for flag in leaf.flags]
    assert len(env_names) == len(set(env_names))
    assert len(flags) == len(set(flags))
    assert all(leaf.setting.help for leaf in LEAVES)


def test_config_is_frozen(document: dict[str, object]) -> None:
    cfg = config_from_mapping(document)
    with pytest.raises(AttributeError):
        cfg.slurm.partition = "other"  # type: ignore[misc]


# --------------------------------------------------------------------------- precedence


@pytest.mark.parametrize(
    ("key", "file_value", "env_name", "env_value", "flag_value", "read", "expected"),
    [
        (
            "slurm.partition",
            "from-file",
            "GRID_SUPERVISOR_SLURM_PARTITION",
            "from-env",
            "from-flag",
            lambda c: c.slurm.partition,
            ["from-flag", "from-env", "from-file", "main"],
        ),
        (
            "benchmark.disable",
            True,
            "GRID_SUPERVISOR_BENCHMARK_DISABLE",
            "false",
            "true",
            lambda c: c.benchmark.disable,
            [True, False, True, False],
        ),
        (
            "prices.cpuPerMin",
            "1",
            "GRID_SUPERVISOR_PRICES_CPU_PER_MIN",
            "2",
            "3",
            lambda c: c.prices.cpu_per_min,
            [3, 2, 1, 950_000_000_000_000_000],
        ),
        (
            "benchmark.timeLimit",
            "1h",
            "GRID_SUPERVISOR_BENCHMARK_TIME_LIMIT",
            "2h",
            "3h",
            lambda c: c.benchmark.time_limit,
            [timedelta(hours=h) for h in (3, 2, 1, 24)],
        ),
        (
            "reaper.reportGrace",
            "30s",
            "GRID_SUPERVISOR_REAPER_REPORT_GRACE",
            "20s",
            "5s",
            lambda c: c.reaper.report_grace,
            [timedelta(seconds=s) for s in (5, 20, 30, 10)],
        ),
        (
            "benchmark.storage.sizeMb",
            64,
            "GRID_SUPERVISOR_BENCHMARK_STORAGE_SIZE_MB",
            "32",
            "16",
            lambda c: c.benchmark.storage.size_mb,
            [16, 32, 64, 1024],
        ),
    ],
)
def test_precedence_flag_over_env_over_file_over_default(
    document: dict[str, object],
    key: str,
    file_value: object,
    env_name: str,
    env_value: str,
    flag_value: str,
    read: object,
    expected: list[object],
) -> None:
    def with_file(doc: dict[str, object]) -> dict[str, object]:
        *sections, last = key.split(".")
        node = doc
        for section in sections:
            node = node.setdefault(section, {})  # type: ignore[assignment]
        node[last] = file_value
        return doc

    import copy

    full = with_file(copy.deepcopy(document))
    runs = [
        (full, {env_name: env_value}, {key: flag_value}, "flag"),
        (full, {env_name: env_value}, {}, "env"),
        (full, {}, {}, "file"),
        (document, {}, {}, "default"),
    ]
    assert callable(read)
    for (doc, env, flags, kind), want in zip(runs, expected, strict=True):
        loaded = load(document=doc, env=env, flags=flags)
        assert read(loaded.config) == want, kind
        assert loaded.sources[key].kind == kind


def test_systematic_env_name_wins_over_the_go_alias(document: dict[str, object]) -> None:
    env = {"GRID_SUPERVISOR_SLURM_PARTITION": "systematic", "SLURM_PARTITION": "go"}
    loaded = load(document=document, env=env)
    assert loaded.config.slurm.partition == "systematic"
    assert str(loaded.sources["slurm.partition"]) == "env GRID_SUPERVISOR_SLURM_PARTITION"


def test_empty_values_count_as_unset(document: dict[str, object]) -> None:
    env = {"GRID_SUPERVISOR_SLURM_PARTITION": "", "SLURM_PARTITION": "go"}
    loaded = load(document=document, env=env, flags={"benchmark.runAs": ""})
    assert loaded.config.slurm.partition == "go"
    assert loaded.config.benchmark.run_as == "root"


def test_the_go_supervisor_environment_alone_is_a_whole_configuration(
    keys: dict[str, Path],
) -> None:
    ssh_key_base64 = base64.b64encode(keys["ssh"].read_bytes()).decode()
    env = {
        "ETH_PRIVATE_KEY": WALLET_KEY,
        "METASCHEDULER_ENDPOINT_RPC": "http://127.0.0.1:8545",
        "METASCHEDULER_ENDPOINT_WS": "ws://127.0.0.1:8545",
        "METASCHEDULER_SMART_CONTRACT": CONTRACT.lower(),
        "METASCHEDULER_CPU_PRICE_PER_MIN": "7",
        "METASCHEDULER_LABELS": "Zone=CH-1,name=My Cluster",
        "SBATCH_ENDPOINT": "127.0.0.1:50051",
        "SBATCH_TLS_ENABLE": "false",
        "SLURM_SSH_ADDRESS": "127.0.0.1:2222",
        "SLURM_SSH_ADMIN_USER": "slurm",
        "SLURM_SSH_PRIVATE_KEY": ssh_key_base64,
        "SLURM_SBATCH_PATH": "/opt/slurm/bin/sbatch",
        "SLURM_PARTITION": "debug",
        "BENCHMARK_HPL_SINGLE_NODE": "true",
        "BENCHMARK_UNRESPONSIVE": "true",
        "BENCHMARK_TIME_LIMIT": "90m",
        "BENCHMARK_ENV": "A=1,B=2",
        "BENCHMARK_UCX": "true",
        "BENCHMARK_UCX_TRANSPORT": "sm,self",
        "LISTEN_ADDRESS": ":4000",
        "PUBLIC_ADDRESS": "supervisor.example.com:443",
    }
    loaded = load(env=env)
    cfg = loaded.config
    assert cfg.wallet.read_private_key() == bytes.fromhex(WALLET_KEY)
    assert cfg.chain.rpc_endpoint == "http://127.0.0.1:8545"
    assert cfg.chain.ws_endpoint == "ws://127.0.0.1:8545"
    assert cfg.chain.metascheduler_address == CONTRACT
    assert cfg.prices.cpu_per_min == 7
    assert cfg.labels == {"zone": "ch-1", "name": "my-cluster"}
    assert cfg.sbatch.endpoint == "127.0.0.1:50051"
    assert cfg.sbatch.tls.enable is False
    assert cfg.slurm.ssh.read_private_key() == keys["ssh"].read_bytes()
    assert cfg.slurm.commands.sbatch == "/opt/slurm/bin/sbatch"
    assert cfg.slurm.partition == "debug"
    assert cfg.benchmark.hpl.single_node is True
    assert cfg.benchmark.ior.single_node is False
    assert cfg.benchmark.include_unresponsive is True
    assert cfg.benchmark.time_limit == timedelta(minutes=90)
    assert cfg.benchmark.env == {"A": "1", "B": "2"}
    assert cfg.benchmark.ucx.enable is True
    assert cfg.benchmark.ucx.transport == "sm,self"
    assert cfg.grpc.listen_address == "0.0.0.0:4000"
    assert cfg.grpc.public_address == "supervisor.example.com:443"
    assert str(loaded.sources["wallet.privateKey"]) == "env ETH_PRIVATE_KEY"
    assert verify_offline(cfg) == []


def test_mappings_merge_key_by_key_across_sources(document: dict[str, object]) -> None:
    document["labels"] = {"zone": "file", "name": "Cluster One"}
    loaded = load(
        document=document,
        env={"GRID_SUPERVISOR_LABELS": "zone=env,os=linux"},
        flags={"labels": ["zone=flag", "GPU=RTX 3090!"]},
    )
    assert loaded.config.labels == {
        "zone": "flag",
        "name": "cluster-one",
        "os": "linux",
        "gpu": "rtx-3090",
    }
    source = loaded.sources["labels"]
    assert source.kind == "flag"
    assert str(source) == "file <mapping> + env GRID_SUPERVISOR_LABELS + flag --labels"


def test_flags_from_the_command_line_and_config_file_from_the_environment(
    tmp_path: Path, document: dict[str, object]
) -> None:
    path = write_yaml(tmp_path / "supervisor.yaml", document)
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    args = parser.parse_args(
        [
            "--slurm.ssh.admin-user",
            "admin",
            "--benchmark.disable",
            "--benchmark.ucx.enable=false",
            "--label",
            "zone=eu",
            "--labels",
            "name=x",
            "--prices.gpu-per-min",
            "12",
        ]
    )
    loaded = load_from_args(args, env={"GRID_SUPERVISOR_CONFIG": str(path)})
    cfg = loaded.config
    assert loaded.file == path
    assert cfg.slurm.ssh.admin_user == "admin"
    assert cfg.benchmark.disable is True
    assert cfg.benchmark.ucx.enable is False
    assert cfg.labels == {"zone": "eu", "name": "x"}
    assert cfg.prices.gpu_per_min == 12
    assert str(loaded.sources["slurm.ssh.adminUser"]) == "flag --slurm.ssh.adminUser"
    assert str(loaded.sources["slurm.ssh.address"]) == f"file {path}"

    explicit = parser.parse_args(["--config", str(tmp_path / "missing.yaml")])
    with pytest.raises(ConfigError, match=r"missing\.yaml'?: cannot read"):
        load_from_args(explicit, env={"GRID_SUPERVISOR_CONFIG": str(path)})


# --------------------------------------------------------------------------- errors


def test_a_misspelt_key_is_named_with_its_path_and_a_suggestion(
    document: dict[str, object],
) -> None:
    ssh = document["slurm"]["ssh"]  # type: ignore[index]
    ssh["adress"] = ssh.pop("address")
    document["benchmark"] = {"hpl": {"singlenode": True}}
    document["pricez"] = {}
    with pytest.raises(ConfigError) as excinfo:
        load(document=document, env={})
    text = problems_of(excinfo)
    assert "slurm.ssh.adress: unknown key (did you mean 'address'?)" in text
    assert "benchmark.hpl.singlenode: unknown key (did you mean 'singleNode'?)" in text
    assert "pricez: unknown key (did you mean 'prices'?)" in text


def test_a_scalar_where_a_section_belongs(document: dict[str, object]) -> None:
    document["benchmark"] = "yes"
    with pytest.raises(ConfigError) as excinfo:
        load(document=document, env={})
    assert "benchmark: expected a section (a mapping of settings), got 'yes'" in problems_of(
        excinfo
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("abc", "prices.cpuPerMin: expected an integer string in wei, got 'abc'"),
        ("-1", "prices.cpuPerMin: expected an integer string in wei, got '-1'"),
        ("9.5e17", "prices.cpuPerMin: expected an integer string in wei, got '9.5e17'"),
        (str(2**256), "prices.cpuPerMin: expected an integer string in wei between 0 and 2**256-1"),
    ],
)
def test_bad_prices_are_named(document: dict[str, object], raw: str, message: str) -> None:
    document["prices"] = {"cpuPerMin": raw}
    with pytest.raises(ConfigError) as excinfo:
        load(document=document, env={})
    assert message in problems_of(excinfo)


def test_prices_accept_bare_yaml_integers_and_the_uint256_maximum(
    document: dict[str, object],
) -> None:
    document["prices"] = {"gpuPerMin": 0, "memPerMin": str(2**256 - 1)}
    cfg = config_from_mapping(document)
    assert cfg.prices.gpu_per_min == 0
    assert cfg.prices.mem_per_min == 2**256 - 1


def test_errors_from_env_and_flags_name_their_source(document: dict[str, object]) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load(
            document=document,
            env={"METASCHEDULER_GPU_PRICE_PER_MIN": "lots"},
            flags={"benchmark.timeLimit": "forever"},
        )
    text = problems_of(excinfo)
    assert "prices.gpuPerMin: expected an integer string in wei, got 'lots' (from env " in text
    assert "benchmark.timeLimit: expected a duration such as 24h" in text
    assert "(from flag --benchmark.timeLimit)" in text


def test_every_problem_is_reported_at_once(document: dict[str, object]) -> None:
    document["log"] = {"level": "loud", "format": "xml"}
    document["chain"] = {"rpcEndpoint": "ftp://x", "wsEndpoint": "https://testnet/ws"}
    with pytest.raises(ConfigError) as excinfo:
        load(document=document, env={})
    assert len(excinfo.value.problems) == 4
    text = problems_of(excinfo)
    assert "log.level: expected one of debug, info, warning, error, got 'loud'" in text
    assert "chain.rpcEndpoint: expected a http:// or https:// URL" in text
    assert "chain.wsEndpoint: expected a ws:// or wss:// URL (write wss://" in text
    assert excinfo.value.render().startswith("invalid configuration (4 problems):\n  ")


def test_missing_required_settings_say_how_to_set_them() -> None:
    with pytest.raises(ConfigError) as excinfo:
        load(document={}, env={})
    text = problems_of(excinfo)
    assert "grpc.publicAddress: required (" in text
    assert "GRID_SUPERVISOR_GRPC_PUBLIC_ADDRESS (or PUBLIC_ADDRESS) in the environment" in text
    assert "or --grpc.publicAddress" in text
    assert "slurm.ssh.address: required" in text
    assert "slurm.ssh.adminUser: required" in text


def test_exactly_one_wallet_key_and_one_ssh_key(
    document: dict[str, object], keys: dict[str, Path]
) -> None:
    document["wallet"] = {"privateKeyFile": str(keys["wallet"]), "privateKey": WALLET_KEY}
    document["slurm"]["ssh"].pop("privateKeyFile")  # type: ignore[index]
    with pytest.raises(ConfigError) as excinfo:
        load(document=document, env={})
    text = problems_of(excinfo)
    assert "wallet: set exactly one of wallet.privateKey and wallet.privateKeyFile" in text
    assert "slurm.ssh: set exactly one of slurm.ssh.privateKeyFile and" in text
    assert WALLET_KEY not in text


def test_tls_files_come_in_pairs_and_require_needs_a_secret(
    document: dict[str, object], tmp_path: Path
) -> None:
    document["grpc"]["tls"] = {"certFile": str(tmp_path / "c.pem")}  # type: ignore[index]
    document["grpc"]["reporterAuth"] = {"require": True}  # type: ignore[index]
    with pytest.raises(ConfigError) as excinfo:
        load(document=document, env={})
    text = problems_of(excinfo)
    assert "grpc.tls: set both certFile and keyFile, or neither" in text
    assert "grpc.reporterAuth.require: needs grpc.reporterAuth.secretFile" in text


def test_unknown_grid_supervisor_variables_are_warned_about(
    document: dict[str, object],
) -> None:
    loaded = load(document=document, env={"GRID_SUPERVISOR_SLURM_SSH_ADRESS": "x"})
    assert loaded.warnings == (
        "environment variable GRID_SUPERVISOR_SLURM_SSH_ADRESS sets nothing "
        "(did you mean GRID_SUPERVISOR_SLURM_SSH_ADDRESS?)",
    )


# --------------------------------------------------------------------------- secrets


SECRET_SSH_BASE64 = base64.b64encode(b"not really a key but secret 1234567890").decode()


def secret_fragments(secret: str) -> Iterator[str]:
    """Every 8-character slice: not even part of a secret may leak."""
    return (secret[i : i + 8] for i in range(len(secret) - 7))


def test_a_bad_inline_wallet_key_is_reported_without_its_value(
    document: dict[str, object],
) -> None:
    bad = WALLET_KEY[:-1] + "z"
    document["wallet"] = {"privateKey": bad}
    with pytest.raises(ConfigError) as excinfo:
        load(document=document, env={})
    text = excinfo.value.render() + repr(excinfo.value)
    assert "wallet.privateKey: expected 32 bytes written as 64 hex digits" in text
    assert not any(fragment in text for fragment in secret_fragments(bad))


def test_a_misspelt_secret_key_does_not_echo_the_value(document: dict[str, object]) -> None:
    document["wallet"] = {"privatekey": WALLET_KEY}
    with pytest.raises(ConfigError) as excinfo:
        load(document=document, env={})
    text = problems_of(excinfo)
    assert "wallet.privatekey: unknown key (did you mean 'privateKey'?)" in text
    assert WALLET_KEY[:8] not in text


def test_a_yaml_syntax_error_does_not_quote_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(f"wallet:\n  privateKey: {WALLET_KEY}\n   oops: [\n")
    with pytest.raises(ConfigError) as excinfo:
        load(file=path, env={})
    text = problems_of(excinfo)
    assert "invalid YAML at line" in text
    assert not any(fragment in text for fragment in secret_fragments(WALLET_KEY))


def test_secret_values_do_not_show_in_repr(document: dict[str, object]) -> None:
    document["wallet"] = {"privateKey": WALLET_KEY}
    cfg = config_from_mapping(document)
    assert isinstance(cfg.wallet.private_key, Secret)
    assert WALLET_KEY not in repr(cfg) and WALLET_KEY not in str(cfg.wallet.private_key)
    assert cfg.wallet.private_key.reveal() == WALLET_KEY
    assert cfg.wallet.read_private_key() == bytes.fromhex(WALLET_KEY)


# --------------------------------------------------------------------------- value parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", timedelta(hours=24)),
        ("1h30m", timedelta(minutes=90)),
        ("90s", timedelta(seconds=90)),
        ("1.5h", timedelta(minutes=90)),
        ("2d", timedelta(days=2)),
        ("500ms", timedelta(milliseconds=500)),
        ("0", timedelta(0)),
        (" 45m ", timedelta(minutes=45)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "24", "h", "1x", "-1h", "1h 30m", "one hour", True, 1.5])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [(timedelta(hours=24), "24h"), (timedelta(seconds=90), "1m30s"), (timedelta(0), "0s")],
)
def test_durations_format_back_the_go_way(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
    assert parse_duration(text) == value


def test_benchmark_time_limit_must_reach_a_minute(document: dict[str, object]) -> None:
    document["benchmark"] = {"timeLimit": "30s"}
    with pytest.raises(ConfigError, match=r"benchmark\.timeLimit: expected a duration of at least"):
        load(document=document, env={})


# --------------------------------------------------------------------------- reaper and sizing


def test_reaper_and_benchmark_sizing_defaults(document: dict[str, object]) -> None:
    cfg = config_from_mapping(document)
    reaper, hpl, storage = cfg.reaper, cfg.benchmark.hpl, cfg.benchmark.storage
    assert reaper.interval == timedelta(minutes=1)
    assert reaper.first_sweep_after == timedelta(seconds=2)
    assert reaper.report_grace == timedelta(seconds=10)
    assert reaper.lost_grace == timedelta(minutes=10)
    assert (hpl.problem_size_percent, hpl.block_size, hpl.cpus_per_rank) == (50, 0, 1)
    assert storage.shared_scratch == Path("/opt/cache/shared")
    assert storage.local_scratch == Path("/tmp")
    assert storage.size_mb == 1024 and cfg.benchmark.output_folder is None


def test_reaper_and_benchmark_sizing_from_a_file(
    tmp_path: Path, document: dict[str, object]
) -> None:
    document["reaper"] = {
        "interval": "3s",
        "firstSweepAfter": "500ms",
        "reportGrace": "5s",
        "lostGrace": "1h30m",
    }
    document["benchmark"] = {
        "outputFolder": "/shared/out",
        "hpl": {"problemSizePercent": 3, "blockSize": 64, "cpusPerRank": 8},
        "storage": {"sharedScratch": "/scratch", "localScratch": "/local", "sizeMb": 64},
    }
    loaded = load(file=write_yaml(tmp_path / "c.yaml", document), env={})
    reaper, benchmark = loaded.config.reaper, loaded.config.benchmark
    assert reaper.interval == timedelta(seconds=3)
    assert reaper.first_sweep_after == timedelta(milliseconds=500)
    assert reaper.report_grace == timedelta(seconds=5)
    assert reaper.lost_grace == timedelta(minutes=90)
    assert benchmark.output_folder == Path("/shared/out")
    assert (benchmark.hpl.problem_size_percent, benchmark.hpl.block_size) == (3, 64)
    assert benchmark.hpl.cpus_per_rank == 8
    assert benchmark.storage.shared_scratch == Path("/scratch")
    assert benchmark.storage.local_scratch == Path("/local")
    assert benchmark.storage.size_mb == 64
    assert loaded.sources["reaper.lostGrace"].kind == "file"


def test_reaper_and_benchmark_sizing_from_the_environment_and_flags(
    document: dict[str, object],
) -> None:
    env = {
        "GRID_SUPERVISOR_REAPER_INTERVAL": "3s",
        "GRID_SUPERVISOR_REAPER_FIRST_SWEEP_AFTER": "10m",
        "GRID_SUPERVISOR_BENCHMARK_HPL_PROBLEM_SIZE_PERCENT": "3",
        "BENCHMARK_HPL_BLOCK_SIZE": "64",  # the Go supervisor's name
        "GRID_SUPERVISOR_BENCHMARK_STORAGE_SHARED_SCRATCH": "/scratch",
        "GRID_SUPERVISOR_BENCHMARK_OUTPUT_FOLDER": "/shared/out",
    }
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, config_option=False)
    flags = ["--reaper.lost-grace", "2m", "--benchmark.hpl.cpusPerRank", "4"]
    args = parser.parse_args([*flags, "--benchmark.storage.size-mb", "16"])
    cfg = load(document=document, env=env, flags=flag_values(args)).config
    assert cfg.reaper.interval == timedelta(seconds=3)
    assert cfg.reaper.first_sweep_after == timedelta(minutes=10)
    assert cfg.reaper.lost_grace == timedelta(minutes=2)
    assert cfg.reaper.report_grace == timedelta(seconds=10)
    assert (cfg.benchmark.hpl.problem_size_percent, cfg.benchmark.hpl.block_size) == (3, 64)
    assert cfg.benchmark.hpl.cpus_per_rank == 4
    assert cfg.benchmark.storage.shared_scratch == Path("/scratch")
    assert cfg.benchmark.storage.size_mb == 16
    assert cfg.benchmark.output_folder == Path("/shared/out")


@pytest.mark.parametrize(
    ("key", "raw", "expected"),
    [
        ("reaper.interval", "0", "expected a duration longer than 0"),
        ("reaper.lostGrace", "-5m", "expected a duration such as 24h"),
        ("reaper.reportGrace", "10", "expected a duration such as 24h"),
        ("benchmark.hpl.problemSizePercent", "0.5", "expected an integer, got '0.5'"),
        ("benchmark.hpl.problemSizePercent", "101", "expected an integer from 1 to 100"),
        ("benchmark.hpl.blockSize", "-1", "expected an integer of at least 0"),
        ("benchmark.hpl.cpusPerRank", "0", "expected an integer of at least 1"),
        ("benchmark.storage.sizeMb", "0", "expected an integer of at least 1"),
        ("benchmark.storage.sharedScratch", "scratch", "expected an absolute path (starting"),
        ("benchmark.outputFolder", "out", "expected an absolute path (starting with /)"),
        ("chain.fees", "1559", "expected one of auto, legacy, eip1559, got '1559'"),
        ("chain.gasLimit", "20000", "expected estimate or a whole number of gas of at least"),
        ("chain.gasLimit", "2e7", "expected estimate or a whole number of gas of at least"),
        (
            "chain.gasLimit",
            "estimated",
            "expected estimate or a whole number of gas of at least 21000, got 'estimated'",
        ),
    ],
)
def test_bad_reaper_and_sizing_values_are_named(
    document: dict[str, object], key: str, raw: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load(document=document, env={}, flags={key: raw})
    assert f"{key}: {expected}" in problems_of(excinfo)
    assert f"(from flag --{key})" in problems_of(excinfo)


def test_a_bad_reaper_timing_in_a_file_exits_2_naming_the_key(
    tmp_path: Path,
    document: dict[str, object],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cli.main import main

    for name in [*LEAF_BY_ENV, ENV_CONFIG_FILE]:
        monkeypatch.delenv(name, raising=False)
    document["reaper"] = {"interval": "0s"}
    path = write_yaml(tmp_path / "c.yaml", document)
    assert main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "reaper.interval: expected a duration longer than 0, such as 30s or 10m, got '0s'" in err


def test_addresses_lowercase_and_valid_checksums_pass_and_normalise() -> None:
    assert parse_eth_address(CONTRACT.lower()) == CONTRACT
    assert parse_eth_address(CONTRACT) == CONTRACT
    assert parse_eth_address(WALLET_ADDRESS.lower()) == WALLET_ADDRESS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (CONTRACT.replace("Fb", "fB"), "checksum"),
        ("0x1234", "0x-prefixed 20-byte hex address"),
        (CONTRACT[2:], "0x-prefixed 20-byte hex address"),
        ("0x" + "g" * 40, "0x-prefixed 20-byte hex address"),
        (12, "0x-prefixed 20-byte hex address"),
    ],
)
def test_bad_addresses(text: object, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        parse_eth_address(text)


def test_host_ports() -> None:
    assert parse_listen_address(":3000") == "0.0.0.0:3000"
    assert parse_listen_address("127.0.0.1:0").port == 0
    assert parse_ssh_address("login") == "login:22"
    assert parse_ssh_address("login:2222").port == 2222
    assert parse_ssh_address("[::1]:2222").host == "::1"
    assert parse_ssh_address("[::1]") == "[::1]:22"
    for bad in ("login:70000", "login:ssh", "bad host:22", "::1:22"):
        with pytest.raises(ValueError, match=r"expected (a )?host"):
            parse_ssh_address(bad)


def test_wei_and_wallet_keys() -> None:
    assert parse_wei(" 42 ") == 42
    with pytest.raises(ValueError, match="in wei"):
        parse_wei(True)
    assert parse_wallet_key("0X" + WALLET_KEY.upper()) == bytes.fromhex(WALLET_KEY)
    for bad in ("", WALLET_KEY[:-2], "00" * 32, "ff" * 32):
        with pytest.raises(ValueError, match="expected"):
            parse_wallet_key(bad)


def test_labels_are_normalised_like_the_go_supervisor() -> None:
    assert normalise_label("my_invalid-label123!") == "my_invalid-label123"
    assert normalise_label(".a@b#c$d%e^f&g.f") == ".a-b-c-d-e-f-g.f"
    assert normalise_label("validLabel123") == "validlabel123"


def test_customer_users(document: dict[str, object]) -> None:
    customer = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    cfg = config_from_mapping(document)
    assert cfg.slurm.customer_users.user_for(customer) == customer.lower()
    document["slurm"]["customerUsers"] = {  # type: ignore[index]
        "template": "u{hex}",
        "byAddress": {customer: "alice"},
    }
    cfg = config_from_mapping(document)
    assert cfg.slurm.customer_users.user_for(customer.lower()) == "alice"
    assert cfg.slurm.customer_users.user_for("0x" + "ab" * 20) == "u" + "ab" * 20
    document["slurm"]["customerUsers"] = {"template": "{user}"}  # type: ignore[index]
    with pytest.raises(ConfigError, match=r"slurm\.customerUsers\.template: expected a template"):
        config_from_mapping(document)


# --------------------------------------------------------------------------- offline checks


def test_offline_checks_pass_on_real_keys(
    document: dict[str, object], keys: dict[str, Path]
) -> None:
    document["slurm"]["ssh"]["knownHostsFile"] = str(keys["known_hosts"])  # type: ignore[index]
    cfg = config_from_mapping(document)
    assert verify_offline(cfg) == []
    assert provider_address(cfg.wallet.read_private_key()) == WALLET_ADDRESS


def test_offline_checks_find_bad_files(
    document: dict[str, object], keys: dict[str, Path], tmp_path: Path
) -> None:
    keys["ssh"].write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nsecretgarbage\n")
    keys["wallet"].write_text("not hex at all")
    (tmp_path / "secret").write_text("short")
    document["grpc"] = {
        "publicAddress": "127.0.0.1:3000",
        "tls": {"certFile": str(tmp_path / "none.crt"), "keyFile": str(tmp_path / "none.key")},
        "reporterAuth": {"secretFile": str(tmp_path / "secret")},
    }
    document["slurm"]["ssh"]["knownHostsFile"] = str(tmp_path / "nope")  # type: ignore[index]
    document["sbatch"] = {"tls": {"caFile": str(tmp_path / "ca.pem")}}
    problems = "\n".join(verify_offline(config_from_mapping(document)))
    assert "wallet.privateKeyFile: expected 32 bytes written as 64 hex digits" in problems
    assert (
        "slurm.ssh.privateKeyFile: expected an unencrypted OpenSSH or PEM private key" in problems
    )
    assert "grpc.tls: cannot load the certificate and key" in problems
    assert "grpc.reporterAuth.secretFile: expected at least 16 bytes" in problems
    assert "sbatch.tls.caFile: cannot read" in problems
    assert "secretgarbage" not in problems and "not hex at all" not in problems


def test_a_loaded_config_records_its_file(tmp_path: Path, document: dict[str, object]) -> None:
    path = write_yaml(tmp_path / "c.yaml", document)
    loaded = load(file=path, env={})
    assert isinstance(loaded, LoadedConfig)
    assert loaded.file == path
    assert loaded.sources["grpc.publicAddress"].kind == "file"
    assert loaded.sources["log.level"].kind == "default"


# --- values that crashed the parsers (issue 11) --------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/tmp/a\0b", "without NUL bytes"),
        ("/tmp/\udcff", "lone surrogate"),
        ("~nouser-grid-test/x", "no user 'nouser-grid-test'"),
        ("/tmp/" + "x" * 256, "at most 255 bytes"),
        ("/tmp/" + "é" * 128, "at most 255 bytes"),  # 256 bytes in UTF-8
        ("/" + "a/" * 2100, "at most 4095 bytes"),
    ],
)
def test_paths_the_system_cannot_take_are_a_value_error(raw: str, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        parse_path(raw)


def test_paths_with_long_but_legal_names_and_a_known_home_pass() -> None:
    assert parse_path("/tmp/" + "x" * 255) == Path("/tmp/" + "x" * 255)
    assert parse_path("~root/x") == Path("/root/x")


@pytest.mark.parametrize("raw", ["99999999999999999d", "876001h", "1" + "0" * 30 + "s", "1e400h"])
def test_durations_beyond_a_century_or_too_long_are_a_value_error(raw: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(raw)


def test_integers_and_prices_are_bounded_before_int_sees_them() -> None:
    with pytest.raises(ValueError, match="at most 30 digits"):
        parse_int("9" * 5000)
    with pytest.raises(ValueError, match="at most 30 digits"):
        parse_int(10**40)
    with pytest.raises(ValueError, match="wei"):
        parse_wei("9" * 5000)
    assert parse_int("-" + "9" * 30) == -int("9" * 30)


def test_user_templates_render_only_the_two_placeholders() -> None:
    customer = "0x" + "Ab" * 20
    assert render_user_template("{address}", customer) == "0x" + "ab" * 20
    assert render_user_template("c{hex}x", customer) == "c" + "ab" * 20 + "x"
    for template in ("{address.upper}", "{address[0]}", "{address:.2}", "{address!r}", "{0}"):
        with pytest.raises(ValueError, match="not a placeholder"):
            render_user_template(template, customer)
        with pytest.raises(ValueError, match="expected a template"):
            check_user_template(template)
    with pytest.raises(ValueError, match="every customer's jobs run as the same UNIX user"):
        check_user_template("root")
