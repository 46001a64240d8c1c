"""Bring the whole local grid up and down: the orchestration behind ``testbed up`` / ``down``.

``up`` (idempotent, as root):

1. installs what is missing (apt packages; anvil and solcjs through ``testbed.node``);
2. if every recorded part still runs and env.json exists, does nothing ("already up") but set
   anvil's mining mode to the one ``GRID_TESTBED_BLOCK_TIME`` asks for (:mod:`testbed.anvil`;
   unset: automine), unless the SLURM-side reporters asked for (``scripts``, the default, or
   ``plugins``: see :mod:`testbed.slurm`) are not the live ones: then it switches them
   (:func:`switch_reporters`, SLURM restarted with its jobs kept); if only some parts run (a
   crash, a killed process), it stops those and starts afresh;
3. makes the customers' UNIX users and the SSH keys, then starts munged, slurmctld, three slurmd,
   sshd and anvil, and waits for each to answer;
4. deploys the contracts, grants the meta-scheduler role, mints credits to the customers,
   optionally registers and approves the provider;
5. starts the sbatch service over TLS and waits for it;
6. writes the supervisor config and, last, env.json.

A failure stops whatever this ``up`` started and raises ``TestbedError`` naming the part and its
log.  ``down`` cancels the SLURM jobs left, then stops every recorded process by pid (SIGTERM,
then SIGKILL after a deadline), newest first.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import msgspec

from testbed import anvil, contracts, faults, logger_service, market, slurm, sshd, tls, users
from testbed import layout as lay
from testbed.contracts import CompileError, GridAddresses
from testbed.env import (
    PROVIDER_PRICES,
    TestbedEnv,
    build_env,
    known_hosts_file,
    read_env,
    write_env,
    write_supervisor_config,
)
from testbed.evm import ContractRevert, EvmError
from testbed.layout import Layout
from testbed.node import NodeTools, NodeToolsError, ensure_node_tools
from testbed.processes import (
    PartNotReady,
    TestbedError,
    ensure_port_free,
    is_running,
    read_records,
    start,
    stop,
    wait_until,
)
from testbed.scripts import ScriptStoreError, put_script

APT_PACKAGES = (
    "slurm-wlm",
    "slurmctld",
    "slurmd",
    "slurm-client",
    "munge",
    "openssh-server",
    "libslurm-dev",
    "sudo",
)

PART_TIMEOUT = 30.0
"""Seconds each part gets to become ready."""

CUSTOMER_CREDITS = 1_000_000 * 10**18
"""Credits (in wei of the credit token) minted to each customer at ``up``."""


SBATCH_SCRIPT_TTL = 24 * 3600

T = TypeVar("T")


class UpResult(msgspec.Struct, frozen=True):
    env: TestbedEnv
    already_up: bool
    seconds: float
    switched: bool = False
    """An ``up`` of a testbed already up switched its reporters (restarting SLURM)."""


def expected_parts() -> list[str]:
    """Names of the processes a complete testbed runs (munged only when the testbed started it)."""
    return [
        "slurmctld",
        *(f"slurmd-{n}" for n in lay.NODES),
        "sshd",
        "anvil",
        "sbatch-service",
    ]


def status(layout: Layout) -> dict[str, bool]:
    """Whether each part runs (as recorded by the testbed), plus ``env`` (up completed)."""
    records = {r.name: r for r in read_records(layout.pids)}
    parts = {name: name in records and is_running(records[name]) for name in expected_parts()}
    if "munged" in records:
        parts["munged"] = is_running(records["munged"])
    else:
        parts["munged"] = slurm.munge_works()
    parts["env"] = layout.env_file.exists()
    return parts


def is_up(layout: Layout) -> bool:
    return all(status(layout).values())


# --------------------------------------------------------------------------- packages


def missing_packages(packages: tuple[str, ...] = APT_PACKAGES) -> list[str]:
    """The apt packages that are not installed."""
    done = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package} ${Status}\n", *packages],
        capture_output=True,
        text=True,
        check=False,
    )
    installed = {
        line.split()[0]
        for line in done.stdout.splitlines()
        if line.endswith("install ok installed")
    }
    return [p for p in packages if p not in installed]


def ensure_packages(log: Callable[[str], None], packages: tuple[str, ...] = APT_PACKAGES) -> None:
    """apt-get install what is missing of ``packages``; ``apt-get update`` first only when the
    package lists are empty, or when an install fails (stale lists)."""
    missing = missing_packages(packages)
    if not missing:
        return
    log(f"installing {' '.join(missing)}")
    lists = Path("/var/lib/apt/lists")
    if not any(lists.glob("*_Packages*")):
        _apt(["update", "-q"])
    try:
        _apt(["install", "-y", "-q", "--no-install-recommends", *missing])
    except TestbedError:
        _apt(["update", "-q"])
        _apt(["install", "-y", "-q", "--no-install-recommends", *missing])


def _apt(args: list[str]) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    done = subprocess.run(
        ["apt-get", *args], capture_output=True, text=True, env=env, check=False, timeout=600
    )
    if done.returncode != 0:
        raise TestbedError(f"apt-get {args[0]} failed: {done.stderr.strip()[-1500:]}")


# --------------------------------------------------------------------------- up


@contextlib.contextmanager
def _exclusive(layout: Layout) -> Iterator[None]:
    """Serialise ``up`` and ``down`` of one testbed (an flock on ``<testbed>/.lock``): a second
    ``up`` started meanwhile waits, then finds the testbed up."""
    layout.root.mkdir(parents=True, exist_ok=True)
    with (layout.root / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def up(
    layout: Layout | None = None,
    *,
    register_provider: bool = False,
    reporters: slurm.Reporters = slurm.DEFAULT_REPORTERS,
    plugins_dir: Path | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> UpResult:
    """Bring the testbed up (see the module docstring) with ``reporters`` live on the SLURM side
    (a testbed already up with the other kind is switched: :func:`switch_reporters`); returns
    its env."""
    layout = layout or Layout.from_env()
    reporters = slurm.check_reporters(reporters)
    if os.geteuid() != 0:
        raise TestbedError("testbed up must run as root (it starts SLURM and sshd)")
    with _exclusive(layout):
        return _up_locked(
            layout,
            register_provider=register_provider,
            reporters=reporters,
            plugins_dir=plugins_dir,
            log=log,
        )


def _up_locked(
    layout: Layout,
    *,
    register_provider: bool,
    reporters: slurm.Reporters,
    plugins_dir: Path | None,
    log: Callable[[str], None],
) -> UpResult:
    began = time.monotonic()
    current = read_env(layout)
    if current is not None and is_up(layout):
        slurm.write_hooks_env(layout)  # cheap; both follow changes of the testbed
        write_supervisor_config(layout, current)
        block_time = anvil.block_time_from_env()  # so is anvil's mining mode (no restart)
        if anvil.block_time() != block_time:
            anvil.set_block_time(block_time)
            log(f"anvil: {f'a block every {block_time:g} s' if block_time else 'automine'}")
        switched = slurm.live_reporters() != reporters
        if switched:
            switch_reporters(layout, reporters, plugins_dir=plugins_dir, log=log)
        if switched or current.slurm.reporters != reporters:
            slurm_env = msgspec.structs.replace(current.slurm, reporters=reporters)
            current = msgspec.structs.replace(current, slurm=slurm_env)
            write_env(layout, current)
        return UpResult(
            env=current, already_up=True, seconds=time.monotonic() - began, switched=switched
        )
    leftovers = stop_recorded(layout)
    if leftovers:
        log(f"stopped leftovers of an incomplete testbed: {', '.join(leftovers)}")
    layout.env_file.unlink(missing_ok=True)
    for sub in (layout.root, layout.pids, layout.log, layout.scripts):
        sub.mkdir(parents=True, exist_ok=True)
    # SLURM starts without saved state, so job ids start at 1 again: forget the previous run's
    # hook lines and job outputs, which would carry the same ids.
    (layout.log / "hooks.log").unlink(missing_ok=True)
    shutil.rmtree(layout.job_output, ignore_errors=True)
    # A new chain and a new SLURM: the supervisor's checkpoints of the previous run are stale.
    shutil.rmtree(layout.supervisor_state, ignore_errors=True)
    layout.root.chmod(0o755)
    layout.log.chmod(0o755)
    try:
        env = _bring_up(
            layout,
            register_provider=register_provider,
            reporters=reporters,
            plugins_dir=plugins_dir,
            log=log,
        )
    except BaseException:
        stop_recorded(layout)
        raise
    return UpResult(env=env, already_up=False, seconds=time.monotonic() - began)


def _bring_up(
    layout: Layout,
    *,
    register_provider: bool,
    reporters: slurm.Reporters,
    plugins_dir: Path | None,
    log: Callable[[str], None],
) -> TestbedEnv:
    ensure_packages(log)
    prepare_reporters(reporters, plugins_dir=plugins_dir, log=log)
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        # npm tools and solc compilation take a few seconds: overlap them with the daemons.
        tools_future = pool.submit(_node_tools, layout)
        for port, part in _ports():
            ensure_port_free(port, part)
        start_infrastructure(layout, reporters=reporters, log=log)
        tools = tools_future.result()
        artifacts_future = pool.submit(_compile, tools, layout)
        record = anvil.start_anvil(layout, tools.anvil)
        anvil.wait_ready(layout, record, timeout=PART_TIMEOUT)
        log("anvil answering")
        artifacts = artifacts_future.result()
    addresses = _deploy(layout, artifacts, log=log)
    deployed = {k: str(v) for k, v in msgspec.to_builtins(addresses).items()}
    ca_cert = start_sbatch_service(layout, addresses.meta_scheduler)
    log("sbatch service ready")
    env = build_env(
        layout,
        chain_id=anvil.chain_id(),
        contracts=deployed,
        ca_cert=ca_cert,
        reporters=reporters,
    )
    if register_provider:
        approve_provider(env)
        log("provider registered and approved")
    write_supervisor_config(layout, env)
    write_env(layout, env)
    return env


def _ports() -> list[tuple[int, str]]:
    return [
        (lay.SLURMCTLD_PORT, "slurmctld"),
        *((lay.slurmd_port(n), f"slurmd-{n}") for n in lay.NODES),
        (lay.SSHD_PORT, "sshd"),
        (lay.ANVIL_PORT, "anvil"),
        (lay.SBATCH_PORT, "sbatch-service"),
        (logger_service.LOGGER_PORT, "grid-logger"),
    ]


def start_infrastructure(
    layout: Layout,
    *,
    reporters: slurm.Reporters = slurm.DEFAULT_REPORTERS,
    log: Callable[[str], None],
) -> None:
    """Users, keys, munged, SLURM (with ``reporters``) and sshd, each waited for."""
    sshd.ensure_keys(layout)
    public_key = sshd.supervisor_public_key(layout)
    admin = users.lookup(lay.ADMIN_USER)
    if admin is None:
        raise TestbedError(f"admin user {lay.ADMIN_USER} does not exist")
    users.authorize_key(admin, public_key)
    for customer in lay.customers():
        users.authorize_key(users.ensure_user(customer.unix_user), public_key)
    if slurm.start_munged(layout, timeout=PART_TIMEOUT) is not None:
        log("munged started")
    slurm.write_config(layout, reporters)
    daemons = slurm.start_daemons(layout)
    ssh_record = sshd.start_sshd(layout)
    sshd.wait_ready(layout, ssh_record, timeout=PART_TIMEOUT)
    _write_known_hosts(layout)
    log("sshd answering")
    slurm.wait_ready(layout, daemons, timeout=PART_TIMEOUT)
    log(f"slurm: {len(lay.NODES)} nodes idle in partition {lay.PARTITION}")


# --------------------------------------------------------------------------- reporters


def prepare_reporters(
    reporters: slurm.Reporters, *, plugins_dir: Path | None, log: Callable[[str], None]
) -> None:
    """What ``reporters`` need before SLURM loads them: for ``plugins``, their runtime package
    (``libgrpc++1.51``) and the two plugin files in SLURM's plugin folder. Nothing for
    ``scripts`` (the hooks run in place from the checkout)."""
    if reporters != "plugins":
        return
    ensure_packages(log, slurm.PLUGIN_PACKAGES)
    folder = slurm.plugins_dir(plugins_dir)
    copied = slurm.install_plugins(folder)
    if copied:
        log(f"installed {', '.join(copied)} from {folder} into {slurm.SLURM_PLUGIN_DIR}")


def switch_reporters(
    layout: Layout,
    reporters: slurm.Reporters,
    *,
    plugins_dir: Path | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> None:
    """Make ``reporters`` the live SLURM-side reporters of a running testbed: prepare them,
    rewrite slurm.conf (and plugstack.conf), and restart slurmctld and the three slurmd, which
    read both only at start. The restart keeps SLURM's jobs (saved state; running jobs keep
    running under their slurmstepd) and holds allocations meanwhile (partition DOWN until every
    node answers again, so that no launch is cut: see :mod:`testbed.faults`)."""
    prepare_reporters(reporters, plugins_dir=plugins_dir, log=log)
    slurm.write_config(layout, reporters)
    restart_slurm_daemons(layout)
    live = slurm.live_reporters()
    if live != reporters:
        raise TestbedError(
            f"slurmctld runs {live or 'unknown'} reporters after the restart, not {reporters} "
            f"(see {layout.log_file('slurmctld')})"
        )
    log(f"reporters: {reporters} live (SLURM daemons restarted)")


def restart_slurm_daemons(layout: Layout) -> None:
    """Restart slurmctld and every slurmd with their saved state (see :func:`switch_reporters`)."""
    daemon_names = {"slurmctld", *(f"slurmd-{n}" for n in lay.NODES)}
    records = [r for r in read_records(layout.pids) if r.name in daemon_names]
    if any(r.name == "slurmctld" and is_running(r) for r in records):
        faults.stop_part(layout, "slurmctld")  # holds allocations first
    stop(layout.pids, [r for r in records if r.name != "slurmctld"])
    daemons = slurm.start_daemons(layout, clear_state=False)
    slurm.wait_ready(layout, daemons, timeout=PART_TIMEOUT, states=slurm.ANSWERING)
    faults.set_partition_state("UP")


def reporters_status(layout: Layout) -> str:
    """Which reporters are live, for ``testbed status`` (one word): what slurmctld loaded, or,
    when it does not answer, ``unknown`` with what was last configured."""
    live = slurm.live_reporters()
    if live is not None:
        return live
    return f"unknown(slurmctld-not-answering;configured:{slurm.configured_reporters(layout)})"


def _write_known_hosts(layout: Layout) -> None:
    host_public = Path(f"{sshd.host_key(layout)}.pub").read_text().split()
    line = f"[{lay.HOST}]:{lay.SSHD_PORT} {host_public[0]} {host_public[1]}\n"
    known_hosts_file(layout).write_text(line)


def _node_tools(layout: Layout) -> NodeTools:
    return _step("install node tools (npm)", layout.log, lambda: ensure_node_tools(layout.node))


def _compile(tools: NodeTools, layout: Layout) -> Path:
    return _step(
        "compile contracts (solcjs)",
        layout.contracts,
        lambda: contracts.compile_contracts(tools, layout.contracts),
    )


def _deploy(layout: Layout, artifacts: Path, *, log: Callable[[str], None]) -> GridAddresses:
    """Deploy the grid's contracts (granting the meta-scheduler role to account #1) and mint
    credits to every customer. The provider, account #2, is pre-funded with ETH by anvil."""
    anvil_log = layout.log_file("anvil")
    addresses = _step(
        "deploy contracts",
        anvil_log,
        lambda: contracts.deploy_grid(
            anvil.RPC_URL,
            admin_key=lay.account(lay.ADMIN_INDEX).key,
            metascheduler_addr=lay.account(lay.METASCHEDULER_INDEX).address,
            artifacts=artifacts,
        ),
    )
    log("contracts deployed")
    for customer in lay.customers():
        _step(
            f"mint credits to {customer.address}",
            anvil_log,
            lambda c=customer: market.mint_credits(  # type: ignore[misc]
                anvil.RPC_URL,
                addresses,
                admin_key=lay.account(lay.ADMIN_INDEX).key,
                to=c.address,
                amount=CUSTOMER_CREDITS,
            ),
        )
    log(f"minted credits to {len(lay.CUSTOMER_INDEXES)} customers")
    return addresses


def _step(what: str, where: Path, step: Callable[[], T]) -> T:
    """Run one step that calls another module; turn its failure into a TestbedError naming the
    step and where to look (messages of those modules never carry keys)."""
    try:
        return step()
    except TestbedError:
        raise
    except (EvmError, CompileError, NodeToolsError, ScriptStoreError, OSError, ValueError) as exc:
        raise TestbedError(f"{what} failed: {type(exc).__name__}: {exc} (see {where})") from exc


def start_sbatch_service(layout: Layout, meta_scheduler: str) -> Path:
    """Make the TLS files, start the grid logger and the sbatch service (naming the logger as
    ``grid_logger_url``) and wait for a TLS handshake with each; return the CA."""
    files = tls.ensure_tls(layout.tls)
    logger_url = start_grid_logger(layout, files)
    log_file = layout.log_file("sbatch-service")
    record = start(
        "sbatch-service",
        [
            sys.executable,
            "-m",
            "testbed.sbatch_service",
            "--listen",
            f"{lay.HOST}:{lay.SBATCH_PORT}",
            "--cert",
            str(files.server_cert),
            "--key",
            str(files.server_key),
            "--scripts-dir",
            str(layout.scripts),
            "--rpc-url",
            anvil.RPC_URL,
            "--meta-scheduler",
            meta_scheduler,
            "--ttl",
            str(SBATCH_SCRIPT_TTL),
            "--grid-logger-url",
            logger_url,
        ],
        pids_dir=layout.pids,
        log=log_file,
        cwd=lay.REPO_ROOT,
    )
    wait_until(
        lambda: tls_handshake(lay.SBATCH_PORT, files.ca_cert),
        part="sbatch-service",
        log=log_file,
        timeout=PART_TIMEOUT,
        what=f"TLS handshake on {lay.HOST}:{lay.SBATCH_PORT}",
        record=record,
    )
    return files.ca_cert


def start_grid_logger(layout: Layout, files: tls.TlsFiles) -> str:
    """Start the testbed's grid logger (it records what it receives in
    :func:`testbed.logger_service.record_path`) and wait for a TLS handshake; return its URL."""
    port = logger_service.LOGGER_PORT
    log_file = layout.log_file("grid-logger")
    record = start(
        "grid-logger",
        [
            sys.executable,
            "-m",
            "testbed.logger_service",
            "--listen",
            f"{lay.HOST}:{port}",
            "--cert",
            str(files.server_cert),
            "--key",
            str(files.server_key),
            "--record",
            str(logger_service.record_path(layout)),
        ],
        pids_dir=layout.pids,
        log=log_file,
        cwd=lay.REPO_ROOT,
    )
    wait_until(
        lambda: tls_handshake(port, files.ca_cert),
        part="grid-logger",
        log=log_file,
        timeout=PART_TIMEOUT,
        what=f"TLS handshake on {lay.HOST}:{port}",
        record=record,
    )
    return f"{lay.HOST}:{port}"


def tls_handshake(port: int, ca_cert: Path) -> bool:
    """True when a TLS server on ``port`` presents a certificate for 127.0.0.1 signed by the CA."""
    context = ssl.create_default_context(cafile=str(ca_cert))
    context.set_alpn_protocols(["h2"])
    try:
        with (
            socket.create_connection((lay.HOST, port), timeout=1) as raw,
            context.wrap_socket(raw, server_hostname=lay.HOST),
        ):
            return True
    except (OSError, ssl.SSLError):
        return False


# --------------------------------------------------------------------------- market actions


def approve_provider(env: TestbedEnv) -> None:
    """Register the provider (as itself, with the partition's hardware and the default prices)
    and approve it (as admin) unless that registration is approved already, so the market can
    schedule jobs to it. Idempotent."""
    addresses = grid_addresses(env)
    hardware = slurm.partition_hardware(env.slurm.partition)
    anvil_log = Path(env.log_dir) / "anvil.log"
    _step(
        "register provider",
        anvil_log,
        lambda: market.register_provider(
            env.chain.rpc_url,
            addresses,
            provider_key=env.provider.key,
            hardware=market.ProviderHardware(
                nodes=hardware.nodes,
                gpus_per_node=tuple(hardware.gpus_per_node),
                cpus_per_node=tuple(hardware.cpus_per_node),
                mem_per_node=tuple(hardware.mem_per_node),
            ),
            prices=provider_prices(),
            labels=[market.Label(key="name", value="grid-testbed")],
        ),
    )
    approve_if_waiting(env)


def approve_if_waiting(env: TestbedEnv) -> bool:
    """Approve the provider's registration (as admin) if one is waiting for approval; return
    whether this call approved it. Nothing waiting (approved already), or another approval landing
    between the check and the send (the contract's ``WaitingApprovalOnly`` revert), is not an
    error: the registration is approved either way. Other failures raise TestbedError."""
    addresses = grid_addresses(env)
    anvil_log = Path(env.log_dir) / "anvil.log"

    def approve() -> bool:
        with market.connect(env.chain.rpc_url, addresses) as contracts:
            if not contracts.provider_manager.call("isWaitingForApproval", env.provider.address):
                return False
        try:
            market.approve_provider(
                env.chain.rpc_url, addresses, admin_key=env.admin.key, provider=env.provider.address
            )
        except ContractRevert as exc:
            if exc.name == "WaitingApprovalOnly":
                return False
            raise
        return True

    return _step("approve provider", anvil_log, approve)


def provider_prices() -> market.ProviderPrices:
    """The testbed provider's prices (the supervisor config's defaults)."""
    return market.ProviderPrices(
        gpu_price_per_min=PROVIDER_PRICES["gpuPerMin"],
        cpu_price_per_min=PROVIDER_PRICES["cpuPerMin"],
        mem_price_per_min=PROVIDER_PRICES["memPerMin"],
    )


def grid_addresses(env: TestbedEnv) -> GridAddresses:
    return msgspec.convert(env.chain.contracts, contracts.GridAddresses)


class JobRequest(msgspec.Struct, frozen=True):
    """What ``testbed submit-job`` asks for (the job definition and the credits locked)."""

    cpus_per_task: int = 1
    mem_per_cpu: int = 100
    """MB."""
    gpus: int = 0
    ntasks: int = 1
    credits: int = 100
    """Whole credits (10**18 wei of the credit token each)."""
    customer: int = 0
    """Customer by position (0..3) or by account index (3..6)."""
    job_name: str = "testbed"
    schedule: bool = True
    """Meta-schedule the job to our provider right after the request."""


def submit_job(env: TestbedEnv, script: bytes, request: JobRequest) -> str:
    """Store the script, request the job as the customer (approving the credits) and, unless
    told not to, meta-schedule it to the provider. Returns the job id (0x hex)."""
    location_hash = _step(
        "store script", Path(env.scripts_dir), lambda: put_script(Path(env.scripts_dir), script)
    )
    anvil_log = Path(env.log_dir) / "anvil.log"
    addresses = grid_addresses(env)
    customer = env.customer(request.customer)
    definition = market.JobDefinition(
        gpus=request.gpus,
        mem_per_cpu=request.mem_per_cpu,
        cpus_per_task=request.cpus_per_task,
        ntasks=request.ntasks,
        batch_location_hash=location_hash,
    )
    job_id = _step(
        "request job",
        anvil_log,
        lambda: market.request_job(
            env.chain.rpc_url,
            addresses,
            customer_key=customer.key,
            definition=definition,
            locked_credits=request.credits * 10**18,
            job_name=request.job_name,
        ),
    )
    if request.schedule:
        _step(
            "meta-schedule job",
            anvil_log,
            lambda: market.meta_schedule(
                env.chain.rpc_url,
                addresses,
                metascheduler_key=env.meta_scheduler.key,
                job_id=job_id,
                provider=env.provider.address,
            ),
        )
    return job_id


# --------------------------------------------------------------------------- down


def stop_recorded(layout: Layout, *, deadline: float = 5.0) -> list[str]:
    """Stop every process the testbed recorded (newest first); drop stale records."""
    records = read_records(layout.pids)
    if any(r.name == "slurmctld" and is_running(r) for r in records):
        slurm.cancel_all_jobs()
    stopped: list[str] = []
    # Stop the services that depend on others first: sbatch, anvil, sshd, slurmd, slurmctld, munge.
    order = [
        "sbatch-service",
        "grid-logger",
        "anvil",
        "sshd",
        *(f"slurmd-{n}" for n in lay.NODES),
        "slurmctld",
    ]
    by_name = {r.name: r for r in records}
    for name in order:
        if name in by_name:
            stopped += stop(layout.pids, [by_name.pop(name)], deadline=deadline)
    rest = sorted(by_name.values(), key=lambda r: -r.start_ticks)
    for record in rest:
        stopped += stop(layout.pids, [record], deadline=deadline)
    return stopped


def down(layout: Layout | None = None) -> list[str]:
    """Stop everything ``up`` started; returns the names of the processes stopped."""
    layout = layout or Layout.from_env()
    with _exclusive(layout):
        layout.env_file.unlink(missing_ok=True)
        stopped = stop_recorded(layout)
        shutil.rmtree(layout.slurm / "state", ignore_errors=True)
    return stopped


def require_env(layout: Layout | None = None) -> TestbedEnv:
    """The env of the running testbed; TestbedError when it is not up."""
    layout = layout or Layout.from_env()
    env = read_env(layout)
    if env is None:
        raise TestbedError(f"the testbed is not up (no {layout.env_file}); run `testbed up`")
    return env


__all__ = [
    "JobRequest",
    "PartNotReady",
    "TestbedError",
    "UpResult",
    "approve_provider",
    "down",
    "is_up",
    "require_env",
    "status",
    "submit_job",
    "up",
]
