"""Node.js tools of the testbed: the anvil EVM node and the solcjs Solidity compiler.

Both come from npm, pinned, installed with ``npm install --prefix <testbed>/node``. The anvil binary
is the native one shipped in the optional dependency ``@foundry-rs/anvil-linux-amd64`` (npm 11 does
not run anvil's postinstall script, and the native binary is one process with a clean PID, unlike
the ``node_modules/.bin/anvil`` node wrapper). solcjs is the wasm build of solc: no download at
compile time.

Installing is idempotent: if both tools are present at the pinned versions nothing runs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import msgspec

ANVIL_VERSION = "1.7.1"
SOLC_VERSION = "0.8.37"
PACKAGES = {"@foundry-rs/anvil": ANVIL_VERSION, "solc": SOLC_VERSION}
INSTALL_TIMEOUT_S = 300.0


class NodeToolsError(Exception):
    """npm is missing, the install failed, or an installed tool is not where it should be."""


class NodeTools(msgspec.Struct, frozen=True):
    """Paths of the installed tools."""

    anvil: Path
    solcjs: Path


def tool_paths(prefix: Path) -> NodeTools:
    """Where the tools live under an npm prefix (whether installed or not)."""
    modules = prefix / "node_modules"
    return NodeTools(
        anvil=modules / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil",
        solcjs=modules / ".bin" / "solcjs",
    )


def installed_versions(prefix: Path) -> dict[str, str]:
    """Package name -> version of the pinned packages found under ``prefix`` (absent: left out)."""
    found: dict[str, str] = {}
    for name in PACKAGES:
        manifest = prefix / "node_modules" / name / "package.json"
        try:
            found[name] = str(json.loads(manifest.read_text())["version"])
        except (OSError, ValueError, KeyError):
            continue
    return found


def ensure_node_tools(prefix: Path) -> NodeTools:
    """Install the pinned anvil and solc under ``prefix`` unless already there; return the paths."""
    tools = tool_paths(prefix)
    if installed_versions(prefix) != PACKAGES or not _present(tools):
        _npm_install(prefix)
    if installed_versions(prefix) != PACKAGES or not _present(tools):
        raise NodeToolsError(f"npm install under {prefix} did not produce {tools}")
    return tools


def _present(tools: NodeTools) -> bool:
    return tools.anvil.is_file() and tools.solcjs.exists()


def _npm_install(prefix: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise NodeToolsError("npm not found on PATH")
    prefix.mkdir(parents=True, exist_ok=True)
    specs = [f"{name}@{version}" for name, version in PACKAGES.items()]
    command = [npm, "install", "--prefix", str(prefix), "--save-exact", "--no-audit", "--no-fund"]
    try:
        done = subprocess.run(
            [*command, *specs],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise NodeToolsError(f"npm install timed out after {INSTALL_TIMEOUT_S} s") from exc
    if done.returncode != 0:
        raise NodeToolsError(f"npm install failed ({done.returncode}): {done.stderr[-2000:]}")
