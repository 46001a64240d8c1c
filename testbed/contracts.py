"""Compile and deploy the grid's contracts (our own implementation of the meta-scheduler ABI).

``compile_contracts`` feeds every ``contracts/*.sol`` to solc (the solcjs npm module, standard
JSON, optimizer on) and writes one artifact per exported contract, ``<out_dir>/<Name>.json`` =
``{"abi": [...], "bytecode": "0x..."}``. Compiling is skipped when the sources and the compiler are
unchanged (a digest is kept beside the artifacts).

The ABIs are also committed under ``contracts/abi/<Name>.json`` (sorted keys, enums written as
``uint8`` as on the wire) so that the supervisor can embed them without solc:
``python -m testbed.contracts --export-abi`` refreshes them.

``deploy_grid`` deploys Credit, Constants, ProviderManager, ProviderJobQueues, JobRepository and
MetaScheduler, lets the MetaScheduler write to the three sub-contracts (their METASCHEDULER_ROLE)
and grants the oracle METASCHEDULER_ROLE on the MetaScheduler. The admin key keeps
DEFAULT_ADMIN_ROLE everywhere and owns Credit (may mint) and Constants.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import msgspec

from testbed.evm import Chain, Wallet, role_id
from testbed.node import SOLC_VERSION, NodeTools, ensure_node_tools

REPO = Path(__file__).resolve().parents[1]
SOURCES_DIR = REPO / "contracts"
ABI_DIR = SOURCES_DIR / "abi"
DEPLOYABLE = (
    "Credit",
    "Constants",
    "ProviderManager",
    "ProviderJobQueues",
    "JobRepository",
    "MetaScheduler",
)
EXPORTED = (*DEPLOYABLE, "Tools")
OPTIMIZER_RUNS = 200
COMPILE_TIMEOUT_S = 300.0
METASCHEDULER_ROLE = role_id("METASCHEDULER_ROLE")


class CompileError(Exception):
    """solc reported errors, or its output could not be read."""


class GridAddresses(msgspec.Struct, frozen=True):
    """Checksummed addresses of a deployed grid."""

    meta_scheduler: str
    jobs: str
    provider_job_queues: str
    provider_manager: str
    credit: str
    constants: str


# ------------------------------------------------------------------------------------ compiling


def standard_input(
    sources_dir: Path = SOURCES_DIR, *, evm_version: str | None = None
) -> dict[str, Any]:
    """The solc standard-JSON input for every ``*.sol`` in ``sources_dir`` (for solc's default
    EVM version, or ``evm_version``: ``"berlin"`` runs on a chain without EIP-1559)."""
    sources = {
        f"contracts/{path.name}": {"content": path.read_text()}
        for path in sorted(sources_dir.glob("*.sol"))
    }
    settings: dict[str, Any] = {
        "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
        "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
    }
    if evm_version is not None:
        settings["evmVersion"] = evm_version
    return {"language": "Solidity", "sources": sources, "settings": settings}


def compile_contracts(tools: NodeTools, out_dir: Path, *, evm_version: str | None = None) -> Path:
    """Compile ``contracts/*.sol`` into ``out_dir`` (skipped if up to date); return ``out_dir``.
    ``evm_version``: see :func:`standard_input` (keep each version in its own ``out_dir``)."""
    request = standard_input(evm_version=evm_version)
    digest = hashlib.sha256(
        json.dumps([SOLC_VERSION, request], sort_keys=True).encode()
    ).hexdigest()
    stamp = out_dir / "sources.sha256"
    if stamp.is_file() and stamp.read_text() == digest:
        return out_dir
    output = _run_solc(tools, request)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, contract in _contracts_by_name(output).items():
        if name not in EXPORTED:
            continue
        artifact = {
            "abi": normalise_abi(contract["abi"]),
            "bytecode": "0x" + contract["evm"]["bytecode"]["object"],
        }
        (out_dir / f"{name}.json").write_text(json.dumps(artifact, sort_keys=True))
    stamp.write_text(digest)
    return out_dir


# solcjs --standard-json exits before a large stdout is flushed to a pipe, so a tiny script calls
# the solc module's compile() and writes the output file itself.
_COMPILE_JS = """
const fs = require("fs");
const [solcModule, outputPath] = process.argv.slice(-2);
fs.writeFileSync(outputPath, require(solcModule).compile(fs.readFileSync(0, "utf8")));
"""


def _run_solc(tools: NodeTools, request: dict[str, Any]) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        raise CompileError("node not found on PATH")
    solc_module = tools.solcjs.resolve().parent  # .bin/solcjs -> ../solc/solc.js
    with tempfile.TemporaryDirectory(prefix="solc-") as scratch:
        output_path = Path(scratch) / "output.json"
        try:
            done = subprocess.run(
                [node, "-e", _COMPILE_JS, str(solc_module), str(output_path)],
                input=json.dumps(request),
                capture_output=True,
                text=True,
                timeout=COMPILE_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise CompileError(f"solc timed out after {COMPILE_TIMEOUT_S} s") from exc
        if done.returncode != 0 or not output_path.is_file():
            raise CompileError(f"solc failed ({done.returncode}): {done.stderr[-2000:]}")
        try:
            output: dict[str, Any] = json.loads(output_path.read_text())
        except ValueError as exc:
            raise CompileError("solc wrote invalid JSON") from exc
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise CompileError("\n".join(str(e.get("formattedMessage", e)) for e in errors))
    return output


def _contracts_by_name(output: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for per_file in output.get("contracts", {}).values():
        found.update(per_file)
    return found


def normalise_abi(abi: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Write enums as ``uint8`` (solc names them by type in library ABIs), as the wire has them."""

    def fix(param: dict[str, Any]) -> dict[str, Any]:
        param = dict(param)
        internal = str(param.get("internalType", ""))
        if internal.startswith("enum ") and not param["type"].startswith("uint8"):
            suffix = param["type"][param["type"].find("[") :] if "[" in param["type"] else ""
            param["type"] = "uint8" + suffix
        if "components" in param:
            param["components"] = [fix(c) for c in param["components"]]
        return param

    fixed = []
    for item in abi:
        item = dict(item)
        for key in ("inputs", "outputs"):
            if key in item:
                item[key] = [fix(p) for p in item[key]]
        fixed.append(item)
    return fixed


def load_artifact(artifacts: Path, name: str) -> dict[str, Any]:
    artifact: dict[str, Any] = json.loads((artifacts / f"{name}.json").read_text())
    return artifact


def export_abis(artifacts: Path, abi_dir: Path = ABI_DIR) -> list[Path]:
    """Write ``<abi_dir>/<Name>.json`` for every exported contract; return the paths written."""
    abi_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in EXPORTED:
        path = abi_dir / f"{name}.json"
        path.write_text(abi_json(load_artifact(artifacts, name)["abi"]))
        written.append(path)
    return written


def abi_json(abi: list[dict[str, Any]]) -> str:
    """The committed text form of an ABI: sorted keys, 2-space indent, trailing newline."""
    return json.dumps(abi, indent=2, sort_keys=True) + "\n"


def committed_abis(abi_dir: Path = ABI_DIR) -> dict[str, list[dict[str, Any]]]:
    """Contract name -> ABI, from the committed files."""
    return {name: json.loads((abi_dir / f"{name}.json").read_text()) for name in EXPORTED}


# ------------------------------------------------------------------------------------ deploying


def deploy_grid(
    rpc_url: str, *, admin_key: str, metascheduler_addr: str, artifacts: Path
) -> GridAddresses:
    """Deploy a fresh grid with ``admin_key``; ``metascheduler_addr`` gets METASCHEDULER_ROLE."""
    admin = Wallet(admin_key)
    with Chain(rpc_url) as chain:

        def deploy(name: str, *args: Any) -> str:
            artifact = load_artifact(artifacts, name)
            return chain.deploy(admin, artifact["abi"], artifact["bytecode"], *args)

        credit = deploy("Credit")
        constants = deploy("Constants")
        provider_manager = deploy("ProviderManager")
        queues = deploy("ProviderJobQueues")
        jobs = deploy("JobRepository")
        meta_scheduler = deploy("MetaScheduler", credit, constants, provider_manager, queues, jobs)
        for name, address in (
            ("ProviderManager", provider_manager),
            ("ProviderJobQueues", queues),
            ("JobRepository", jobs),
        ):
            contract = chain.contract(address, load_artifact(artifacts, name)["abi"])
            contract.transact(admin, "grantRole", METASCHEDULER_ROLE, meta_scheduler)
        scheduler = chain.contract(meta_scheduler, load_artifact(artifacts, "MetaScheduler")["abi"])
        scheduler.transact(admin, "grantRole", METASCHEDULER_ROLE, metascheduler_addr)
    return GridAddresses(
        meta_scheduler=meta_scheduler,
        jobs=jobs,
        provider_job_queues=queues,
        provider_manager=provider_manager,
        credit=credit,
        constants=constants,
    )


def main(argv: list[str] | None = None) -> None:
    """``python -m testbed.contracts [--export-abi] [--node-prefix DIR] [--out DIR]``."""
    default_testbed = Path(os.environ.get("GRID_TESTBED_DIR", REPO / ".testbed"))
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--node-prefix", type=Path, default=default_testbed / "node")
    parser.add_argument("--out", type=Path, default=default_testbed / "contracts")
    parser.add_argument("--export-abi", action="store_true", help="refresh contracts/abi/*.json")
    args = parser.parse_args(argv)
    artifacts = compile_contracts(ensure_node_tools(args.node_prefix), args.out)
    print(f"artifacts: {artifacts}")
    if args.export_abi:
        for path in export_abis(artifacts):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
