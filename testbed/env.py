"""What a client of the testbed needs to know, as one JSON document (``testbed env``).

``up`` writes it last, to ``<testbed>/env.json``, so its presence means the testbed came up
completely.  It holds the anvil accounts' private keys: they are the public, well-known keys of
anvil's default mnemonic, worthless outside the testbed, but still never logged.

``up`` also writes a supervisor configuration file (YAML, the schema of ``config.schema``) that
points a supervisor at this testbed as the provider (account #2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import yaml

from testbed import layout as lay
from testbed.layout import ChainAccount, Layout
from testbed.processes import TestbedError
from testbed.tls import tls_files

PROVIDER_PRICES = {
    "cpuPerMin": 950_000_000_000_000_000,
    "gpuPerMin": 8_500_000_000_000_000_000,
    "memPerMin": 80_000_000_000_000,
}
"""The testbed provider's prices, wei of credit per CPU, GPU and MB per minute (the config's
defaults); ``testbed approve-provider`` registers the same."""


class Account(msgspec.Struct, frozen=True):
    address: str
    key: str

    @classmethod
    def of(cls, account: ChainAccount) -> Account:
        return cls(address=account.address, key=account.key)


class Customer(msgspec.Struct, frozen=True):
    index: int
    address: str
    key: str
    unix_user: str


class ChainEnv(msgspec.Struct, frozen=True):
    rpc_url: str
    ws_url: str
    chain_id: int
    contracts: dict[str, str]
    """meta_scheduler, jobs, provider_job_queues, provider_manager, credit, constants."""


class SbatchEnv(msgspec.Struct, frozen=True):
    endpoint: str
    ca_cert: str


class SshEnv(msgspec.Struct, frozen=True):
    host: str
    port: int
    address: str
    admin_user: str
    customer_users: list[str]
    supervisor_key: str
    """Private key file (OpenSSH ed25519), authorised for the admin and every customer."""
    known_hosts: str
    """A known_hosts file holding the testbed sshd's host key."""


class SlurmEnv(msgspec.Struct, frozen=True):
    partition: str
    nodes: list[str]
    cpus_per_node: int
    memory_per_node_mb: int
    job_output_dir: str
    """World-writable folder for job output files."""
    hook_log: str
    """Where the SLURM hook scripts write one line per call."""
    reporters: str = "scripts"
    """The SLURM-side reporters live: ``scripts`` (this project's hooks: spool, secret, retries)
    or ``plugins`` (the operator's real C++ plugins: one try per report, no secret)."""


class TestbedEnv(msgspec.Struct, frozen=True):
    """Everything a client needs to use the running testbed."""

    __test__ = False  # not a pytest test class, despite the name

    testbed_dir: str
    log_dir: str
    chain: ChainEnv
    admin: Account
    meta_scheduler: Account
    """The meta-scheduler oracle (METASCHEDULER_ROLE)."""
    provider: Account
    customers: list[Customer]
    sbatch: SbatchEnv
    ssh: SshEnv
    slurm: SlurmEnv
    supervisor_config: str
    supervisor_callback: str
    """host:port the supervisor's own gRPC server listens on in this testbed."""
    scripts_dir: str

    def customer(self, index: int) -> Customer:
        """Customer by account index (3..6) or by position (0..3)."""
        for customer in self.customers:
            if customer.index == index:
                return customer
        return self.customers[index]


def build_env(
    layout: Layout,
    *,
    chain_id: int,
    contracts: dict[str, str],
    ca_cert: Path,
    reporters: str = "scripts",
) -> TestbedEnv:
    """The env of a testbed brought up at ``layout`` with these contracts and reporters."""
    from testbed import anvil

    customers = [
        Customer(index=c.index, address=c.address, key=c.key, unix_user=c.unix_user)
        for c in lay.customers()
    ]
    return TestbedEnv(
        testbed_dir=str(layout.root),
        log_dir=str(layout.log),
        chain=ChainEnv(
            rpc_url=anvil.RPC_URL, ws_url=anvil.WS_URL, chain_id=chain_id, contracts=contracts
        ),
        admin=Account.of(lay.account(lay.ADMIN_INDEX)),
        meta_scheduler=Account.of(lay.account(lay.METASCHEDULER_INDEX)),
        provider=Account.of(lay.account(lay.PROVIDER_INDEX)),
        customers=customers,
        sbatch=SbatchEnv(endpoint=f"{lay.HOST}:{lay.SBATCH_PORT}", ca_cert=str(ca_cert)),
        ssh=SshEnv(
            host=lay.HOST,
            port=lay.SSHD_PORT,
            address=f"{lay.HOST}:{lay.SSHD_PORT}",
            admin_user=lay.ADMIN_USER,
            customer_users=[c.unix_user for c in customers],
            supervisor_key=str(layout.supervisor_key),
            known_hosts=str(known_hosts_file(layout)),
        ),
        slurm=SlurmEnv(
            partition=lay.PARTITION,
            nodes=list(lay.NODES),
            cpus_per_node=lay.CPUS_PER_NODE,
            memory_per_node_mb=lay.MEMORY_PER_NODE_MB,
            job_output_dir=str(layout.job_output),
            hook_log=str(layout.log / "hooks.log"),
            reporters=reporters,
        ),
        supervisor_config=str(layout.supervisor_config),
        supervisor_callback=f"{lay.HOST}:{lay.SUPERVISOR_CALLBACK_PORT}",
        scripts_dir=str(layout.scripts),
    )


def known_hosts_file(layout: Layout) -> Path:
    return layout.ssh / "known_hosts"


def write_env(layout: Layout, env: TestbedEnv) -> None:
    """Write env.json (mode 0600: it holds keys) atomically."""
    tmp = layout.env_file.with_suffix(".tmp")
    tmp.write_bytes(msgspec.json.format(msgspec.json.encode(env), indent=2) + b"\n")
    tmp.chmod(0o600)
    tmp.replace(layout.env_file)


def read_env(layout: Layout) -> TestbedEnv | None:
    """The env of the running testbed, or None when ``up`` has not completed."""
    try:
        return msgspec.json.decode(layout.env_file.read_bytes(), type=TestbedEnv)
    except (OSError, msgspec.DecodeError):
        return None


def supervisor_config(layout: Layout, env: TestbedEnv) -> dict[str, Any]:
    """The supervisor configuration (camelCase keys, ``config.schema.Config``) for this
    testbed: the provider's wallet (key in a 0600 file), anvil, the sbatch service over TLS with
    the testbed CA, SLURM over SSH as ``root`` with the supervisor key, the partition."""
    return {
        "wallet": {"privateKeyFile": str(provider_key_file(layout))},
        "chain": {
            "rpcEndpoint": env.chain.rpc_url,
            "wsEndpoint": env.chain.ws_url,
            "metaschedulerAddress": env.chain.contracts["meta_scheduler"],
            "chainId": env.chain.chain_id,
        },
        "sbatch": {
            "endpoint": env.sbatch.endpoint,
            "tls": {"enable": True, "caFile": env.sbatch.ca_cert},
        },
        "slurm": {
            "ssh": {
                "address": env.ssh.address,
                "adminUser": env.ssh.admin_user,
                "privateKeyFile": env.ssh.supervisor_key,
                "knownHostsFile": env.ssh.known_hosts,
            },
            "partition": env.slurm.partition,
            "jobOutputFolder": env.slurm.job_output_dir,  # emptied by every fresh `testbed up`
        },
        "benchmark": benchmark_config(layout, env.ssh.admin_user),
        "labels": {"name": "grid-testbed"},
        "prices": {k: str(v) for k, v in PROVIDER_PRICES.items()},
        "grpc": {
            "listenAddress": env.supervisor_callback,
            "publicAddress": env.supervisor_callback,
            # The SLURM-side reporters speak TLS (without verifying, like the real plugins).
            "tls": {
                "certFile": str(tls_files(layout.tls).server_cert),
                "keyFile": str(tls_files(layout.tls).server_key),
            },
            # Our reporters present this secret; reports without it are cross-checked with SLURM.
            "reporterAuth": {"secretFile": str(layout.reporter_secret)},
        },
        # Every reporter of the testbed runs on this host.
        "callbacks": {"allowedSources": ["127.0.0.1", "::1"]},
        "state": {"folder": str(layout.supervisor_state)},
        "log": {"level": "debug"},
    }


def benchmark_config(layout: Layout, run_as: str) -> dict[str, Any]:
    """Benchmarks for the testbed: native (Debian's hpcc and fio, see ``testbed.benchmark``),
    sized for three fake 8-CPU nodes on a 2-core machine (one MPI rank per node, a problem of
    ~1 k, 64 MB per fio file, ranks that yield when idle), and off unless a test turns them on
    (``testbed up`` installs no benchmark tool, and the other tests want a quick start)."""
    return {
        "disable": True,
        "mode": "native",
        "runAs": run_as,
        "timeLimit": "10m",
        "hpl": {"problemSizePercent": 3, "blockSize": 64, "cpusPerRank": 8},
        "storage": {"sharedScratch": str(layout.root / "scratch"), "sizeMb": 64},
        "env": {"OMPI_MCA_mpi_yield_when_idle": "1"},
    }


def provider_key_file(layout: Layout) -> Path:
    return layout.root / "provider.key"


def write_supervisor_config(layout: Layout, env: TestbedEnv) -> Path:
    """Write the provider key file and the supervisor config; return the config's path."""
    key_file = provider_key_file(layout)
    key_file.write_text(env.provider.key.removeprefix("0x") + "\n")
    key_file.chmod(0o600)
    layout.supervisor_state.mkdir(parents=True, exist_ok=True)
    text = "# Written by `testbed up`: a supervisor for the testbed's provider (account #2).\n"
    text += yaml.safe_dump(supervisor_config(layout, env), sort_keys=False)
    layout.supervisor_config.write_text(text)
    check_supervisor_config(layout.supervisor_config)
    return layout.supervisor_config


def check_supervisor_config(path: Path) -> None:
    """Load the file with the supervisor's own loader and check its files; TestbedError on any
    problem (the loader never repeats secrets)."""
    from config.check import verify_offline
    from config.errors import ConfigError
    from config.load import load

    try:
        problems = verify_offline(load(file=path, env={}).config)
    except ConfigError as exc:
        problems = list(exc.problems)
    if problems:
        raise TestbedError(f"supervisor config {path} is invalid: {'; '.join(problems)}")
