"""``grid-supervisor config check`` and ``config show``, through the real command line."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import asyncssh
import pytest
import yaml

from cli.main import main
from config.settings import ENV_CONFIG_FILE, LEAF_BY_ENV

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"
WALLET_KEY = "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
WALLET_ADDRESS = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No configuration variable of the machine running the tests leaks in."""
    for name in [*LEAF_BY_ENV, ENV_CONFIG_FILE]:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    wallet = tmp_path / "wallet.key"
    wallet.write_text(WALLET_KEY + "\n")
    ssh_key = asyncssh.generate_private_key("ssh-ed25519")
    ssh = tmp_path / "ssh_key"
    ssh.write_bytes(ssh_key.export_private_key())
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_bytes(b"slurm-login.example.com " + ssh_key.export_public_key())
    return {"wallet": wallet, "ssh": ssh, "known_hosts": known_hosts}


@pytest.fixture
def good_file(tmp_path: Path, keys: dict[str, Path]) -> Path:
    document = {
        "wallet": {"privateKeyFile": str(keys["wallet"])},
        "slurm": {
            "ssh": {
                "address": "127.0.0.1:2222",
                "adminUser": "slurm",
                "privateKeyFile": str(keys["ssh"]),
            }
        },
        "grpc": {"publicAddress": "127.0.0.1:3000"},
        "labels": {"zone": "ch-1"},
    }
    path = tmp_path / "good.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_the_example_config_passes_check_with_real_keys(
    keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "config",
            "check",
            str(EXAMPLE),
            "--wallet.privateKeyFile",
            str(keys["wallet"]),
            "--slurm.ssh.privateKeyFile",
            str(keys["ssh"]),
            "--slurm.ssh.knownHostsFile",
            str(keys["known_hosts"]),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith(f"ok: provider {WALLET_ADDRESS} on https://testnet.deepsquare.run/rpc")
    assert "SLURM slurm@slurm-login.example.com:22 partition main" in out
    assert out.count("\n") == 1
    assert err == ""


def test_the_example_config_without_its_key_files_fails_check(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["config", "check", str(EXAMPLE)])
    err = capsys.readouterr().err
    assert code == 2
    assert "wallet.privateKeyFile: cannot read '/etc/grid-supervisor/wallet.key'" in err


def test_check_names_a_misspelt_key(
    tmp_path: Path, good_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(good_file.read_text().replace("address:", "adress:"))
    assert main(["config", "check", str(bad)]) == 2
    captured = capsys.readouterr()
    assert "slurm.ssh.adress: unknown key (did you mean 'address'?)" in captured.err
    assert captured.out == ""


def test_check_names_a_non_numeric_price(
    tmp_path: Path, good_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(good_file.read_text() + "prices:\n  cpuPerMin: abc\n")
    assert main(["config", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "prices.cpuPerMin: expected an integer string in wei, got 'abc'" in err


def test_check_as_a_real_process_exits_2_on_a_bad_file(tmp_path: Path, good_file: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(good_file.read_text() + "prices:\n  cpuPerMin: abc\n")
    executable = Path(sys.executable).with_name("grid-supervisor")
    env = {k: v for k, v in os.environ.items() if k not in LEAF_BY_ENV and k != ENV_CONFIG_FILE}
    result = subprocess.run(
        [str(executable), "config", "check", str(bad)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "prices.cpuPerMin: expected an integer string in wei, got 'abc'" in result.stderr
    good = subprocess.run(
        [str(executable), "config", "check", str(good_file)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert good.returncode == 0, good.stderr
    assert good.stdout.startswith("ok: provider ")


def test_check_reports_an_ssh_key_that_does_not_parse(
    good_file: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    keys["ssh"].write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAsecret\n")
    assert main(["config", "check", str(good_file)]) == 2
    err = capsys.readouterr().err
    assert "slurm.ssh.privateKeyFile: expected an unencrypted OpenSSH or PEM private key" in err
    assert "AAAAsecret" not in err


def test_show_prints_each_value_with_its_source(
    good_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SLURM_PARTITION", "debug")
    monkeypatch.setenv("GRID_SUPERVISOR_LOG_LEVEL", "debug")
    code = main(
        [
            "config",
            "show",
            "--config",
            str(good_file),
            "--log.level",
            "error",
            "--label",
            "os=linux",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    assert "  partition: debug  # env SLURM_PARTITION" in lines
    assert "  level: error  # flag --log.level" in lines
    assert f"    address: 127.0.0.1:2222  # file {good_file}" in lines
    assert "  format: human  # default" in lines
    assert f"labels:  # file {good_file} + flag --labels" in lines
    document = yaml.safe_load(out)
    assert document["labels"] == {"zone": "ch-1", "os": "linux"}
    assert document["prices"]["cpuPerMin"] == "950000000000000000"
    assert document["benchmark"]["timeLimit"] == "24h"


def test_show_json(good_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show", "--json", "--config", str(good_file)]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["config"]["grpc"]["listenAddress"] == "0.0.0.0:3000"
    assert payload["sources"]["grpc.listenAddress"] == "default"
    assert payload["sources"]["grpc.publicAddress"] == f"file {good_file}"
    assert payload["file"] == str(good_file)


def test_show_never_prints_a_secret(
    good_file: Path,
    keys: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    document = yaml.safe_load(good_file.read_text())
    del document["wallet"]
    del document["slurm"]["ssh"]["privateKeyFile"]
    good_file.write_text(yaml.safe_dump(document))
    ssh_base64 = base64.b64encode(keys["ssh"].read_bytes()).decode()
    monkeypatch.setenv("ETH_PRIVATE_KEY", WALLET_KEY)
    argv = ["--config", str(good_file), "--slurm.ssh.privateKeyBase64", ssh_base64]
    assert main(["config", "show", *argv]) == 0
    assert main(["config", "show", "--json", *argv]) == 0
    assert main(["config", "check", str(good_file), *argv[2:]]) == 0
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert "privateKey: <redacted>  # env ETH_PRIVATE_KEY" in output
    assert '"privateKeyBase64": "<redacted>"' in output
    ssh_text = keys["ssh"].read_text()
    for secret in (WALLET_KEY, ssh_base64, ssh_text):
        compact = "".join(secret.split())
        assert not any(compact[i : i + 12] in output for i in range(len(compact) - 11))


def test_errors_never_print_a_secret(good_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad_wallet_key = WALLET_KEY[:-1]
    document = yaml.safe_load(good_file.read_text())
    document["wallet"] = {"privateKey": bad_wallet_key}
    good_file.write_text(yaml.safe_dump(document))
    bad_base64 = "%%%" + WALLET_KEY
    argv = ["--config", str(good_file), "--slurm.ssh.privateKeyBase64", bad_base64]
    assert main(["config", "show", *argv]) == 2
    err = capsys.readouterr().err
    assert "wallet.privateKey: expected 32 bytes written as 64 hex digits" in err
    assert "slurm.ssh.privateKeyBase64: expected base64 text (from flag" in err
    assert WALLET_KEY[:12] not in err


def test_config_without_an_action_prints_usage_and_exits_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["config"]) == 2
    assert "check" in capsys.readouterr().err


# --- inputs that crashed the loader (issue 11): exit 2 naming the key, never a traceback ------

DEEP_LABELS = "{a: " * 3000 + "1" + "}" * 3000


def _with(good: str, *, slurm: str = "", extra: str = "") -> str:
    """The good file with lines added under ``slurm:`` and whole sections appended."""
    text = good.replace("slurm:\n", "slurm:\n" + slurm, 1) if slurm else good
    return text + extra


@pytest.mark.parametrize(
    ("slurm", "extra", "key", "expected"),
    [
        ('  customerUsers: {template: "{address.foo}"}\n', "", "slurm.customerUsers.template", ""),
        ('  customerUsers: {template: "{address[x]}"}\n', "", "slurm.customerUsers.template", ""),
        ("", 'reaper: {interval: "99999999999999999d"}\n', "reaper.interval", "at most 36500d"),
        ("", "benchmark: {hpl: {blockSize: " + "9" * 5000 + "}}\n", "benchmark.hpl.blockSize", ""),
        ("", "chain: {chainId: " + "9" * 5000 + "}\n", "chain.chainId", "at most 30 digits"),
        ("", "prices: {cpuPerMin: " + "9" * 5000 + "}\n", "prices.cpuPerMin", "wei"),
        ("", f"state: {{folder: {DEEP_LABELS}}}\n", "state", "nested more than 16 levels"),
        ("", 'state: {folder: "/tmp/a\\0b"}\n', "state.folder", "without NUL bytes"),
        ("", 'state: {folder: "/tmp/a\\udcff"}\n', "state.folder", "lone surrogate"),
        ("", "state: {folder: ~nouser/x}\n", "state.folder", "no user 'nouser'"),
        ("", "state: {folder: /tmp/" + "x" * 300 + "}\n", "state.folder", "at most 255 bytes"),
        ("", 'sbatch: {tls: {caFile: "/tmp/\\0"}}\n', "sbatch.tls.caFile", "NUL"),
        ('  partition: "a\\0b"\n', "", "slurm.partition", "without NUL bytes"),
        ("  partition: grid; rm\n", "", "slurm.partition", "partition name"),
        ("", "reaper: {interval: 2001-13-45}\n", "reaper.interval", "expected a duration"),
        ("", "reaper: {interval: !!float x}\n", "reaper.interval", "expected a duration"),
        ("", 'reaper: {interval: !!int "-"}\n', "reaper.interval", "expected a duration"),
        ("", "reaper: {interval: !!timestamp x}\n", "reaper.interval", "expected a duration"),
    ],
)
def test_inputs_that_crashed_the_loader_exit_2_naming_the_key(
    tmp_path: Path,
    good_file: Path,
    capsys: pytest.CaptureFixture[str],
    slurm: str,
    extra: str,
    key: str,
    expected: str,
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(_with(good_file.read_text(), slurm=slurm, extra=extra))
    assert main(["config", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("invalid configuration (1 problem):\n")
    assert f"\n  {key}" in err and expected in err, err[:300]


def test_labels_nested_3000_deep_are_refused_naming_labels(
    tmp_path: Path, good_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        good_file.read_text().replace("labels:\n  zone: ch-1\n", f"labels: {DEEP_LABELS}\n")
    )
    assert main(["config", "check", str(bad)]) == 2
    assert (
        "\n  labels (at labels.a.a.a...): nested more than 16 levels deep"
        in capsys.readouterr().err
    )


@pytest.mark.parametrize(
    "template", ["root", "{address:.2}", "u{hex:.3}", "{address!r}", "{0}", "x{}", "{{address}}"]
)
def test_templates_mapping_customers_to_one_user_fail_check(
    tmp_path: Path, good_file: Path, capsys: pytest.CaptureFixture[str], template: str
) -> None:
    bad = tmp_path / "bad.yaml"
    line = f"  customerUsers: {{template: {json.dumps(template)}}}\n"
    bad.write_text(_with(good_file.read_text(), slurm=line))
    assert main(["config", "check", str(bad)]) == 2
    assert "slurm.customerUsers.template: expected a template" in capsys.readouterr().err


def test_templates_giving_each_customer_a_user_pass_check(
    tmp_path: Path, good_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for template in ("{address}", "c{hex}", "grid-{hex}-x"):
        good = tmp_path / "good2.yaml"
        good.write_text(
            _with(good_file.read_text(), slurm=f'  customerUsers: {{template: "{template}"}}\n')
        )
        assert main(["config", "check", str(good)]) == 0, capsys.readouterr().err
        capsys.readouterr()


def test_a_lone_surrogate_from_the_environment_or_a_flag_exits_2(
    good_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["config", "check", str(good_file), "--state.folder", "/tmp/\udcff"]) == 2
    assert (
        "state.folder: expected UTF-8 text (it holds a lone surrogate)" in capsys.readouterr().err
    )
    monkeypatch.setenv("GRID_SUPERVISOR_SLURM_PARTITION", "grid\udcff")
    assert main(["config", "check", str(good_file)]) == 2
    err = capsys.readouterr().err
    assert "slurm.partition: expected UTF-8 text" in err
    assert "(from env GRID_SUPERVISOR_SLURM_PARTITION)" in err
