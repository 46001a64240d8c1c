"""Where the testbed keeps things, which ports it listens on, and whose keys it uses.

Everything the testbed creates lives under one state folder (env ``GRID_TESTBED_DIR``, default
``<repo>/.testbed``), apart from what SLURM, sshd and the customers' UNIX accounts need in fixed
system places (``/etc/slurm/slurm.conf``, ``/etc/passwd``, home folders).  Every service listens
on 127.0.0.1 only.

The chain side uses anvil's default mnemonic, so the roles below are well-known accounts:
#0 admin and deployer, #1 the meta-scheduler oracle, #2 the provider (the supervisor's wallet),
#3..#6 the customers.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import msgspec

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The checkout this testbed belongs to (its ``slurm/`` folder holds the SLURM hook scripts)."""

HOST = "127.0.0.1"
ANVIL_PORT = 8545
SSHD_PORT = 2222
SBATCH_PORT = 8444
SLURMCTLD_PORT = 6817
SUPERVISOR_CALLBACK_PORT = 3000

PARTITION = "grid"
"""The SLURM partition the supervisor serves (deliberately not SLURM's customary ``main``, so that
nothing can silently depend on that name)."""

NODES: tuple[str, ...] = ("n1", "n2", "n3")
SLURMD_FIRST_PORT = 17001
CPUS_PER_NODE = 8
MEMORY_PER_NODE_MB = 4096

ADMIN_USER = "root"
"""The SLURM admin user the supervisor logs in as: only root (the SlurmUser) may raise a job's
time limit, which top-ups need."""

MNEMONIC = "test test test test test test test test test test test junk"
ADMIN_INDEX = 0
METASCHEDULER_INDEX = 1
PROVIDER_INDEX = 2
CUSTOMER_INDEXES: tuple[int, ...] = (3, 4, 5, 6)


def slurmd_port(node: str) -> int:
    """The slurmd port of a fake node (``n1`` -> 17001)."""
    return SLURMD_FIRST_PORT + NODES.index(node)


class ChainAccount(msgspec.Struct, frozen=True):
    """One anvil account: checksummed address and private key (0x hex). Never log the key."""

    index: int
    address: str
    key: str

    @property
    def unix_user(self) -> str:
        """The customer's UNIX user name on the SLURM side: the lowercase 0x address."""
        return self.address.lower()


@functools.cache
def account(index: int) -> ChainAccount:
    """Derive account ``index`` of the anvil mnemonic (m/44'/60'/0'/0/index)."""
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    derived = Account.from_mnemonic(MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    key = derived.key.hex()
    return ChainAccount(
        index=index, address=derived.address, key=key if key.startswith("0x") else "0x" + key
    )


def customers() -> list[ChainAccount]:
    return [account(i) for i in CUSTOMER_INDEXES]


class Layout(msgspec.Struct, frozen=True):
    """The testbed's state folder and the paths inside it."""

    root: Path

    @classmethod
    def from_env(cls) -> Layout:
        """``$GRID_TESTBED_DIR`` if set, else ``<repo>/.testbed``."""
        configured = os.environ.get("GRID_TESTBED_DIR")
        return cls(root=Path(configured).resolve() if configured else REPO_ROOT / ".testbed")

    @property
    def pids(self) -> Path:
        """One JSON record per process the testbed started."""
        return self.root / "pids"

    @property
    def log(self) -> Path:
        """Every process log and every hook log line."""
        return self.root / "log"

    @property
    def slurm(self) -> Path:
        return self.root / "slurm"

    @property
    def slurm_conf(self) -> Path:
        return self.slurm / "slurm.conf"

    @property
    def hooks_env(self) -> Path:
        """Settings for the SLURM hook scripts (linked from /etc/slurm/grid-hooks.env)."""
        return self.slurm / "grid-hooks.env"

    @property
    def job_output(self) -> Path:
        """A world-writable (sticky) folder for job output files."""
        return self.root / "jobs"

    @property
    def ssh(self) -> Path:
        return self.root / "ssh"

    @property
    def supervisor_key(self) -> Path:
        """The supervisor's SSH private key (ed25519, OpenSSH format)."""
        return self.ssh / "supervisor_ed25519"

    @property
    def node(self) -> Path:
        """npm prefix for anvil and solcjs."""
        return self.root / "node"

    @property
    def contracts(self) -> Path:
        return self.root / "contracts"

    @property
    def tls(self) -> Path:
        return self.root / "tls"

    @property
    def scripts(self) -> Path:
        """Batch scripts stored for the sbatch service."""
        return self.root / "scripts"

    @property
    def supervisor_state(self) -> Path:
        """The supervisor's own state folder when it runs against this testbed."""
        return self.root / "supervisor"

    @property
    def supervisor_config(self) -> Path:
        return self.root / "supervisor.yaml"

    @property
    def reporter_secret(self) -> Path:
        """The shared secret of the SLURM-side reporters and the supervisor (0600, kept)."""
        return self.root / "reporter.secret"

    @property
    def env_file(self) -> Path:
        """The JSON that ``testbed env`` prints; written last by ``up``."""
        return self.root / "env.json"

    def log_file(self, part: str) -> Path:
        return self.log / f"{part}.log"
