"""The configuration schema: every setting an operator has, in one tree of frozen msgspec Structs.

This module is the single description of the configuration. Each leaf field carries a ``Setting``
(help text, the Go supervisor's environment variable names, whether it is a secret, an optional
extra check); ``config.settings`` walks the tree once and derives from it the YAML keys (the field
names in camelCase), the environment variables (``GRID_SUPERVISOR_`` + the path in upper snake
case), the command-line flags (``--`` + the dotted path) and the validation.

A field without a default is required. Python code reads the snake_case attributes
(``cfg.slurm.ssh.admin_user``); files, environment and flags use the camelCase path
(``slurm.ssh.adminUser``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from config.errors import ConfigError
from config.values import (
    EthAddress,
    GasLimit,
    HostPort,
    HttpUrl,
    ListenAddress,
    Secret,
    SshAddress,
    Wei,
    WsUrl,
    absolute_path,
    at_least_one_minute,
    check_base64_secret,
    check_cidrs,
    check_env_names,
    check_partition,
    check_unix_user,
    check_user_template,
    check_wallet_key,
    decode_base64,
    int_between,
    normalise_labels,
    normalise_user_map,
    parse_wallet_key,
    positive_duration,
    render_user_template,
)


class Setting(msgspec.Struct, frozen=True):
    """What the schema says about one leaf setting, beside its type and default."""

    help: str
    #: Environment variables of the Go supervisor that also set this (for operators migrating).
    go_env: tuple[str, ...] = ()
    #: Never printed, never repeated in an error message.
    secret: bool = False
    #: An extra check (or normalisation) run on the parsed value; raises ``ValueError(expected)``.
    refine: Callable[[object], object] | None = None


class Section(
    msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True
):
    """Base of every configuration section: immutable, keyword-only, camelCase keys."""


# --------------------------------------------------------------------------- wallet and chain


class Wallet(Section, frozen=True):
    """The provider's identity on chain: it signs every transaction and the sbatch challenge."""

    private_key: Annotated[
        Secret | None,
        Setting(
            "wallet private key, 64 hex digits (prefer privateKeyFile: flags show in `ps`)",
            go_env=("ETH_PRIVATE_KEY",),
            secret=True,
            refine=check_wallet_key,
        ),
    ] = None
    private_key_file: Annotated[
        Path | None, Setting("file holding the wallet private key as 64 hex digits")
    ] = None

    def read_private_key(self) -> bytes:
        """The 32-byte private key, from ``privateKey`` or the file. Errors never show the key."""
        if self.private_key is not None:
            return _wallet_key(self.private_key.reveal(), "wallet.privateKey")
        if self.private_key_file is None:
            raise ConfigError(["wallet: set wallet.privateKey or wallet.privateKeyFile"])
        text = _read_text(self.private_key_file, "wallet.privateKeyFile")
        return _wallet_key(text, "wallet.privateKeyFile")


class Chain(Section, frozen=True):
    """Where the meta-scheduler contract lives."""

    rpc_endpoint: Annotated[
        HttpUrl,
        Setting("JSON-RPC endpoint (calls, transactions)", go_env=("METASCHEDULER_ENDPOINT_RPC",)),
    ] = HttpUrl("https://testnet.deepsquare.run/rpc")
    ws_endpoint: Annotated[
        WsUrl,
        Setting("WebSocket endpoint (log subscriptions)", go_env=("METASCHEDULER_ENDPOINT_WS",)),
    ] = WsUrl("wss://testnet.deepsquare.run/ws")
    metascheduler_address: Annotated[
        EthAddress,
        Setting(
            "address of the meta-scheduler contract (checksummed or lowercase)",
            go_env=("METASCHEDULER_SMART_CONTRACT",),
        ),
    ] = EthAddress("0x3707aB457CF457275b7ec32e203c54df80C299d5")
    chain_id: Annotated[
        int | None, Setting("if set, refuse to start unless the endpoint reports this chain id")
    ] = None
    fees: Annotated[
        Literal["auto", "legacy", "eip1559"],
        Setting(
            "transaction type: auto (EIP-1559 when the node's blocks carry a base fee, legacy "
            "gasPrice otherwise), legacy (always gasPrice, as the Go supervisor) or eip1559"
        ),
    ] = "auto"
    gas_limit: Annotated[
        GasLimit,
        Setting(
            "gas limit of each transaction: estimate (the node's estimate plus a margin) or a "
            "fixed number (the Go supervisor sends 20000000)"
        ),
    ] = GasLimit("estimate")


# --------------------------------------------------------------------------- sbatch service


class SbatchTls(Section, frozen=True):
    enable: Annotated[
        bool, Setting("use TLS towards the sbatch service", go_env=("SBATCH_TLS_ENABLE",))
    ] = True
    ca_file: Annotated[
        Path | None,
        Setting("PEM file of the CA to trust (default: the system's)", go_env=("SBATCH_CA",)),
    ] = None
    insecure: Annotated[
        bool,
        Setting("skip certificate verification (testing only)", go_env=("SBATCH_TLS_INSECURE",)),
    ] = False


class Sbatch(Section, frozen=True):
    """The sbatch service, which hands out each job's batch script."""

    endpoint: Annotated[
        HostPort, Setting("host:port of the sbatch gRPC service", go_env=("SBATCH_ENDPOINT",))
    ] = HostPort("sbatch.deepsquare.run:443")
    tls: SbatchTls = msgspec.field(default_factory=SbatchTls)


# --------------------------------------------------------------------------- SLURM


class SlurmSsh(Section, frozen=True):
    """How the supervisor reaches the SLURM login node."""

    address: Annotated[
        SshAddress,
        Setting("SSH server of the SLURM login node, host[:port]", go_env=("SLURM_SSH_ADDRESS",)),
    ]
    admin_user: Annotated[
        str,
        Setting(
            "UNIX user for squeue/scontrol/scancel as administrator (usually slurm)",
            go_env=("SLURM_SSH_ADMIN_USER",),
            refine=check_unix_user,
        ),
    ]
    private_key_file: Annotated[
        Path | None, Setting("file holding the SSH private key (OpenSSH or PEM)")
    ] = None
    private_key_base64: Annotated[
        Secret | None,
        Setting(
            "the SSH private key file's content in base64",
            go_env=("SLURM_SSH_PRIVATE_KEY",),
            secret=True,
            refine=check_base64_secret,
        ),
    ] = None
    known_hosts_file: Annotated[
        Path | None,
        Setting("known-hosts file to check the login node against (default ~/.ssh/known_hosts)"),
    ] = None
    disable_host_key_check: Annotated[
        bool, Setting("accept any host key from the login node (testing only)")
    ] = False

    def read_private_key(self) -> bytes:
        """The private key's bytes (OpenSSH or PEM text), from the file or the base64 value."""
        if self.private_key_base64 is not None:
            try:
                return decode_base64(self.private_key_base64.reveal())
            except ValueError as error:
                raise ConfigError([f"slurm.ssh.privateKeyBase64: {error}"]) from None
        if self.private_key_file is None:
            raise ConfigError(
                ["slurm.ssh: set slurm.ssh.privateKeyFile or slurm.ssh.privateKeyBase64"]
            )
        return _read_bytes(self.private_key_file, "slurm.ssh.privateKeyFile")


class SlurmCommands(Section, frozen=True):
    """Paths of the SLURM commands on the login node."""

    sbatch: Annotated[str, Setting("path of sbatch", go_env=("SLURM_SBATCH_PATH",))] = (
        "/usr/bin/sbatch"
    )
    scancel: Annotated[str, Setting("path of scancel", go_env=("SLURM_SCANCEL_PATH",))] = (
        "/usr/bin/scancel"
    )
    squeue: Annotated[str, Setting("path of squeue", go_env=("SLURM_SQUEUE_PATH",))] = (
        "/usr/bin/squeue"
    )
    scontrol: Annotated[str, Setting("path of scontrol", go_env=("SLURM_SCONTROL_PATH",))] = (
        "/usr/bin/scontrol"
    )
    sinfo: Annotated[str, Setting("path of sinfo", go_env=("SLURM_SINFO_PATH",))] = "/usr/bin/sinfo"
    sacct: Annotated[str, Setting("path of sacct")] = "/usr/bin/sacct"


class CustomerUsers(Section, frozen=True):
    """Which UNIX user runs a customer's job: the fixed map first, else the template."""

    template: Annotated[
        str,
        Setting(
            "UNIX user for a customer: {address} is the lowercase 0x address, {hex} without 0x",
            refine=check_user_template,
        ),
    ] = "{address}"
    by_address: Annotated[
        dict[str, str],
        Setting("fixed customer address -> UNIX user entries", refine=normalise_user_map),
    ] = msgspec.field(default_factory=dict)

    def user_for(self, customer: str) -> str:
        """The UNIX user that submits the jobs of ``customer`` (a 0x address)."""
        fixed = self.by_address.get(customer.lower())
        return fixed if fixed is not None else render_user_template(self.template, customer)


class Slurm(Section, frozen=True):
    ssh: SlurmSsh
    partition: Annotated[
        str,
        Setting("SLURM partition to use", go_env=("SLURM_PARTITION",), refine=check_partition),
    ] = "main"
    job_output_folder: Annotated[
        Path,
        Setting(
            "folder on the cluster where customer jobs write <job name>-<SLURM id>.out (every "
            "customer user must be able to create files in it: /tmp or another sticky 1777 folder)",
            refine=absolute_path,
        ),
    ] = Path("/tmp")
    commands: SlurmCommands = msgspec.field(default_factory=SlurmCommands)
    customer_users: CustomerUsers = msgspec.field(default_factory=CustomerUsers)


# --------------------------------------------------------------------------- benchmarks


class Hpl(Section, frozen=True):
    """HPL (Linpack), which measures the cluster's floating-point speed; and how it is sized."""

    single_node: Annotated[
        bool, Setting("run HPL on one node only", go_env=("BENCHMARK_HPL_SINGLE_NODE",))
    ] = False
    image: Annotated[str, Setting("HPL container image", go_env=("BENCHMARK_HPL_IMAGE",))] = (
        "registry-1.deepsquare.run#library/hpc-benchmarks:23.5"
    )
    problem_size_percent: Annotated[
        int,
        Setting(
            "HPL's matrix size N, in percent of the largest N the nodes' memory holds "
            "(50 fills about a quarter of the memory; smaller runs faster)",
            refine=int_between(1, 100),
        ),
    ] = 50
    block_size: Annotated[
        int,
        Setting(
            "HPL's block size NB (0: automatic, 512 with GPUs and 192 without)",
            go_env=("BENCHMARK_HPL_BLOCK_SIZE",),
            refine=int_between(0),
        ),
    ] = 0
    cpus_per_rank: Annotated[
        int,
        Setting(
            "CPUs given to each MPI rank of HPL on nodes without GPUs (one rank per GPU otherwise)",
            refine=int_between(1),
        ),
    ] = 1


class Ior(Section, frozen=True):
    single_node: Annotated[
        bool, Setting("run IOR on one node only", go_env=("BENCHMARK_IOR_SINGLE_NODE",))
    ] = False
    image: Annotated[str, Setting("IOR container image", go_env=("BENCHMARK_IOR_IMAGE",))] = (
        "registry-1.deepsquare.run#library/ior-benchmarks:latest"
    )


class Osu(Section, frozen=True):
    image: Annotated[str, Setting("OSU container image", go_env=("BENCHMARK_OSU_IMAGE",))] = (
        "registry-1.deepsquare.run#library/osu-benchmarks:latest"
    )


class Storage(Section, frozen=True):
    """The storage benchmark (fio): one file written then read back in each scratch folder."""

    shared_scratch: Annotated[
        Path,
        Setting("scratch folder on the filesystem every node shares", refine=absolute_path),
    ] = Path("/opt/cache/shared")
    local_scratch: Annotated[
        Path, Setting("scratch folder on each node's own disk", refine=absolute_path)
    ] = Path("/tmp")
    size_mb: Annotated[
        int, Setting("MB written then read back in each folder", refine=int_between(1))
    ] = 1024


class Speedtest(Section, frozen=True):
    image: Annotated[
        str, Setting("speedtest container image", go_env=("BENCHMARK_SPEEDTEST_IMAGE",))
    ] = "registry-1.docker.io#gists/speedtest-cli:1.2.0"


class Ucx(Section, frozen=True):
    enable: Annotated[
        bool, Setting("use UCX (RDMA: InfiniBand, RoCE) for MPI", go_env=("BENCHMARK_UCX",))
    ] = False
    affinity: Annotated[
        str,
        Setting(
            "UCX_NET_DEVICES per node, 'devs_node1|devs_node2|...'",
            go_env=("BENCHMARK_UCX_AFFINITY",),
        ),
    ] = ""
    transport: Annotated[
        str,
        Setting("UCX_TLS, e.g. sm,self,rc (empty: automatic)", go_env=("BENCHMARK_UCX_TRANSPORT",)),
    ] = ""


class Benchmark(Section, frozen=True):
    disable: Annotated[
        bool,
        Setting(
            "skip benchmarks, reuse the last registered results", go_env=("BENCHMARK_DISABLE",)
        ),
    ] = False
    include_unresponsive: Annotated[
        bool,
        Setting("count and benchmark unresponsive nodes too", go_env=("BENCHMARK_UNRESPONSIVE",)),
    ] = False
    run_as: Annotated[
        str,
        Setting(
            "UNIX user that submits the benchmark jobs",
            go_env=("BENCHMARK_RUN_AS",),
            refine=check_unix_user,
        ),
    ] = "root"
    time_limit: Annotated[
        timedelta,
        Setting(
            "time limit of each benchmark job (24h, 90m)",
            go_env=("BENCHMARK_TIME_LIMIT",),
            refine=at_least_one_minute,
        ),
    ] = timedelta(hours=24)
    mode: Annotated[
        Literal["container", "native"],
        Setting("run the benchmarks in containers (Pyxis/enroot) or natively"),
    ] = "container"
    trace: Annotated[
        bool, Setting("NCCL_DEBUG=TRACE in HPL and OSU", go_env=("BENCHMARK_TRACE",))
    ] = False
    env: Annotated[
        dict[str, str],
        Setting(
            "extra environment variables exported in benchmark jobs",
            go_env=("BENCHMARK_ENV",),
            refine=check_env_names,
        ),
    ] = msgspec.field(default_factory=dict)
    output_folder: Annotated[
        Path | None,
        Setting(
            "folder on the login node where benchmark jobs write their output, read back over "
            "SSH (default: the runAs user's home)",
            refine=absolute_path,
        ),
    ] = None
    ucx: Ucx = msgspec.field(default_factory=Ucx)
    hpl: Hpl = msgspec.field(default_factory=Hpl)
    ior: Ior = msgspec.field(default_factory=Ior)
    osu: Osu = msgspec.field(default_factory=Osu)
    storage: Storage = msgspec.field(default_factory=Storage)
    speedtest: Speedtest = msgspec.field(default_factory=Speedtest)


# --------------------------------------------------------------------------- market


class Prices(Section, frozen=True):
    """Prices per minute, in wei (10^-18 credit), registered with the cluster."""

    cpu_per_min: Annotated[
        Wei, Setting("price per CPU thread per minute", go_env=("METASCHEDULER_CPU_PRICE_PER_MIN",))
    ] = Wei(950_000_000_000_000_000)
    gpu_per_min: Annotated[
        Wei, Setting("price per GPU per minute", go_env=("METASCHEDULER_GPU_PRICE_PER_MIN",))
    ] = Wei(8_500_000_000_000_000_000)
    mem_per_min: Annotated[
        Wei, Setting("price per MB of RAM per minute", go_env=("METASCHEDULER_MEM_PRICE_PER_MIN",))
    ] = Wei(80_000_000_000_000)


# --------------------------------------------------------------------------- gRPC server


class GrpcTls(Section, frozen=True):
    """TLS of the gRPC server: both files, or neither (then a TLS proxy must front it)."""

    cert_file: Annotated[Path | None, Setting("PEM certificate chain", go_env=("TLS_CERT",))] = None
    key_file: Annotated[Path | None, Setting("PEM private key", go_env=("TLS_KEY",))] = None


class ReporterAuth(Section, frozen=True):
    """A shared secret the SLURM reporters present with each report."""

    secret_file: Annotated[Path | None, Setting("file holding the shared secret")] = None
    require: Annotated[bool, Setting("refuse reports that do not present the secret")] = False

    def read_secret(self) -> bytes | None:
        """The shared secret (surrounding whitespace stripped), or None when none is configured."""
        if self.secret_file is None:
            return None
        return _read_bytes(self.secret_file, "grpc.reporterAuth.secretFile").strip()


class Grpc(Section, frozen=True, kw_only=True):
    """The server the SLURM reporters call back (JobAPI, SshAPI, Health)."""

    listen_address: Annotated[
        ListenAddress, Setting("host:port to listen on", go_env=("LISTEN_ADDRESS",))
    ] = ListenAddress("0.0.0.0:3000")
    public_address: Annotated[
        HostPort,
        Setting(
            "host:port the SLURM reporters dial (put in every job's comment)",
            go_env=("PUBLIC_ADDRESS",),
        ),
    ]
    tls: GrpcTls = msgspec.field(default_factory=GrpcTls)
    reporter_auth: ReporterAuth = msgspec.field(default_factory=ReporterAuth)


class Callbacks(Section, frozen=True):
    """Who may call the callback server (the ``grpc`` listen address)."""

    allowed_sources: Annotated[
        tuple[str, ...] | None,
        Setting(
            "IP addresses and CIDRs that may call the callback port: slurmctld, the login node "
            "and the compute nodes (and 127.0.0.1 for reporters on this host); any other caller "
            "is refused and counted. Unset: any address (the C++ plugins send no secret, so "
            "set it)",
            refine=check_cidrs,
        ),
    ] = None


# --------------------------------------------------------------------------- reaper


class Reaper(Section, frozen=True):
    """The reaper: at start and then every so often, it compares what the checkpoint store,
    SLURM and the chain say about each live job and settles any difference (a lost report, a
    job SLURM forgot, a job the chain moved on)."""

    interval: Annotated[
        timedelta, Setting("time between two sweeps over the live jobs", refine=positive_duration)
    ] = timedelta(minutes=1)
    first_sweep_after: Annotated[
        timedelta,
        Setting("delay from start-up to the first sweep", refine=positive_duration),
    ] = timedelta(seconds=2)
    report_grace: Annotated[
        timedelta,
        Setting(
            "how long a job SLURM says has ended waits for its completion report before the "
            "reaper takes the end (state, duration, exit code) from SLURM instead",
            refine=positive_duration,
        ),
    ] = timedelta(seconds=10)
    lost_grace: Annotated[
        timedelta,
        Setting(
            "how long SLURM must keep saying it has no such job before the job is declared lost "
            "(PANICKED on chain)",
            refine=positive_duration,
        ),
    ] = timedelta(minutes=10)
    launch_grace: Annotated[
        timedelta,
        Setting(
            "how long a job SLURM says is RUNNING may wait for its prolog before its launch "
            "counts as lost and the job is requeued in SLURM (0s: never)",
        ),
    ] = timedelta(minutes=15)


# --------------------------------------------------------------------------- process


class State(Section, frozen=True):
    folder: Annotated[Path, Setting("folder of the checkpoint store")] = Path(
        "/var/lib/grid-supervisor"
    )


class Metrics(Section, frozen=True):
    listen_address: Annotated[
        ListenAddress | None, Setting("host:port of the Prometheus endpoint (off if unset)")
    ] = None


class Log(Section, frozen=True):
    level: Annotated[Literal["debug", "info", "warning", "error"], Setting("log level")] = "info"
    format: Annotated[Literal["human", "json"], Setting("log format")] = "human"


class Config(Section, frozen=True, kw_only=True):
    """The whole configuration of one supervisor."""

    wallet: Wallet
    chain: Chain = msgspec.field(default_factory=Chain)
    sbatch: Sbatch = msgspec.field(default_factory=Sbatch)
    slurm: Slurm
    benchmark: Benchmark = msgspec.field(default_factory=Benchmark)
    labels: Annotated[
        dict[str, str],
        Setting(
            "extra labels advertised with the cluster (lowercased, [a-z0-9._-])",
            go_env=("METASCHEDULER_LABELS",),
            refine=normalise_labels,
        ),
    ] = msgspec.field(default_factory=dict)
    prices: Prices = msgspec.field(default_factory=Prices)
    grpc: Grpc
    callbacks: Callbacks = msgspec.field(default_factory=Callbacks)
    reaper: Reaper = msgspec.field(default_factory=Reaper)
    state: State = msgspec.field(default_factory=State)
    metrics: Metrics = msgspec.field(default_factory=Metrics)
    log: Log = msgspec.field(default_factory=Log)


# --------------------------------------------------------------------------- file helpers


def _read_bytes(path: Path, key: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise ConfigError([f"{key}: cannot read {str(path)!r}: {error.strerror}"]) from None


def _read_text(path: Path, key: str) -> str:
    try:
        return _read_bytes(path, key).decode("ascii")
    except UnicodeDecodeError:
        raise ConfigError([f"{key}: expected ASCII hex text in {str(path)!r}"]) from None


def _wallet_key(text: str, key: str) -> bytes:
    try:
        return parse_wallet_key(text)
    except ValueError as error:
        raise ConfigError([f"{key}: {error}"]) from None
