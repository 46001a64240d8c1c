"""The supervisor's tree, built from the configuration, and the process around it.

::

    root                      rest_for_one
    ├── slurm                 SlurmActor: SSH pool to the login node
    ├── chain                 ChainActor: JSON-RPC, subscriptions, claims, transactions
    ├── callbacks             CallbackServerActor: gRPC JobAPI, SshAPI, Health
    ├── jobs-supervisor       one_for_one, dynamic: the dispatcher "jobs" and one JobActor per job
    ├── benchmark             BenchmarkActor: measures the cluster (asked by registration)
    ├── registration          RegistrationActor: health check, register, approval, claiming on/off
    └── reaper                ReaperActor: reconciles store, SLURM and chain for live jobs

``rest_for_one``: when an actor fails past its own restarts, those started after it (which use
it) restart too. The order is the dependency order: the chain actor only claims once the
registration actor says so, and the registration actor starts last, when every job can be
handled.
"""

from __future__ import annotations

from actors.benchmark.actor import BenchmarkActor
from actors.benchmark.settings import settings_from_config
from actors.callbacks import CallbackServerActor
from actors.chain.actor import ChainActor, ChainSettings
from actors.chain.pending import StorePendingLog
from actors.chain.transactions import sender_settings_from_config
from actors.control import control_handlers
from actors.drain import DrainSwitch
from actors.grid import Prices
from actors.job.ports import AdapterPorts
from actors.job.supervisor import jobs_supervisor
from actors.metrics import MetricsSource, metrics_server
from actors.reaper import ReaperActor, provider_address
from actors.reaper import settings_from_config as reaper_settings_from_config
from actors.registration import RegistrationActor
from actors.sbatch import SbatchClient, SbatchTls
from actors.slurm.actor import SlurmActor
from config import Config
from runtime.app import run_tree
from runtime.policy import Backoff, RestartIntensity, Strategy
from runtime.registry import Registry
from runtime.store import Store, open_store
from runtime.supervisor import ChildSpec, Supervisor

__all__ = ["build_root", "run_supervisor"]


def build_root(
    cfg: Config, store: Store, registry: Registry, drain: DrainSwitch | None = None
) -> Supervisor:
    """The root supervisor of one supervisor process (nothing starts until it runs)."""
    wallet_key = cfg.wallet.read_private_key()
    ssh_key = cfg.slurm.ssh.read_private_key()
    sbatch = SbatchClient(
        str(cfg.sbatch.endpoint),
        SbatchTls(cfg.sbatch.tls.enable, cfg.sbatch.tls.ca_file, cfg.sbatch.tls.insecure),
        wallet_key,
    )
    ports = AdapterPorts(registry, sbatch)
    listen = cfg.grpc.listen_address

    def slurm() -> SlurmActor:
        return SlurmActor.from_config(cfg.slurm, public_address=str(cfg.grpc.public_address))

    def chain() -> ChainActor:
        return ChainActor(
            rpc_url=str(cfg.chain.rpc_endpoint),
            ws_url=str(cfg.chain.ws_endpoint),
            meta_scheduler=str(cfg.chain.metascheduler_address),
            private_key=wallet_key,
            store=store,
            settings=ChainSettings(sender=sender_settings_from_config(cfg.chain)),
            pending_log=StorePendingLog(store),
        )

    def callbacks() -> CallbackServerActor:
        return CallbackServerActor(
            listen_host=listen.host,
            listen_port=listen.port,
            ssh_private_key=ssh_key,
            store=store,
            tls_cert_file=cfg.grpc.tls.cert_file,
            tls_key_file=cfg.grpc.tls.key_file,
            reporter_secret=cfg.grpc.reporter_auth.read_secret(),
            require_secret=cfg.grpc.reporter_auth.require,
            allowed_sources=cfg.callbacks.allowed_sources,
        )

    benchmark_settings = settings_from_config(cfg.benchmark)

    def benchmark() -> BenchmarkActor:
        return BenchmarkActor(
            settings=benchmark_settings,
            store=store,
            public_address=str(cfg.grpc.public_address),
        )

    def registration() -> RegistrationActor:
        prices = cfg.prices
        return RegistrationActor(
            prices=Prices(
                gpu_per_min=int(prices.gpu_per_min),
                cpu_per_min=int(prices.cpu_per_min),
                mem_per_min=int(prices.mem_per_min),
            ),
            labels=dict(cfg.labels),
            include_unresponsive=cfg.benchmark.include_unresponsive,
            benchmark=True,
            # Four jobs one after the other, each within the time limit, plus their queueing.
            benchmark_timeout=(4 * benchmark_settings.time_limit_minutes + 30) * 60.0,
            drain=drain,
        )

    def reaper() -> ReaperActor:
        return ReaperActor(
            store=store,
            provider=provider_address(wallet_key),
            rpc_url=str(cfg.chain.rpc_endpoint),
            settings=reaper_settings_from_config(cfg.reaper),
        )

    return Supervisor(
        "root",
        [
            ChildSpec("slurm", slurm, shutdown=10.0),
            ChildSpec("chain", chain, shutdown=10.0),
            ChildSpec("callbacks", callbacks, shutdown=10.0),
            ChildSpec(
                "jobs-supervisor", lambda: jobs_supervisor(store=store, ports=ports), shutdown=30.0
            ),
            ChildSpec("benchmark", benchmark, shutdown=15.0),
            ChildSpec("registration", registration, shutdown=5.0),
            ChildSpec("reaper", reaper, shutdown=5.0),
        ],
        strategy=Strategy.REST_FOR_ONE,
        intensity=RestartIntensity(max_restarts=10, period_seconds=60.0),
        backoff=Backoff(initial=0.5, maximum=30.0),
        registry=registry,
    )


async def run_supervisor(cfg: Config, stop_deadline: float = 30.0) -> int:
    """Open the store, build the tree and run it until a signal stops it; the exit code.

    Beside the tree: the operator's commands on the control socket (:mod:`actors.control`), the
    drain switch they turn (:mod:`actors.drain`, read back from the store) and, when
    ``metrics.listenAddress`` is set, Prometheus ``/metrics`` (:mod:`actors.metrics`)."""
    async with open_store(cfg.state.folder) as store:
        registry = Registry()
        drain = await DrainSwitch.load(store)
        root = build_root(cfg, store, registry, drain)
        listen = cfg.metrics.listen_address
        source = MetricsSource(registry, store, drain, healthy=root.healthy)
        async with metrics_server((listen.host, listen.port) if listen else None, source):
            return await run_tree(
                root,
                state_dir=cfg.state.folder,
                stop_deadline=stop_deadline,
                control_handlers=control_handlers(registry, store, drain),
            )
