"""Printing the effective configuration with each value's source; secrets always redacted.

The YAML form is a valid configuration file (sources are trailing comments), so an operator can
save it as a starting point. A secret that is set prints as ``<redacted>``, never any part of it.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from config.load import LoadedConfig
from config.settings import LEAVES, Leaf
from config.values import REDACTED, plain_value

__all__ = ["REDACTED", "as_document", "leaf_value", "plain_value", "render_json", "render_yaml"]


def leaf_value(loaded: LoadedConfig, leaf: Leaf) -> object:
    """The effective value of one setting, redacted if it is a secret."""
    value: object = loaded.config
    for attr in leaf.attrs:
        value = getattr(value, attr)
    if leaf.secret and value is not None:
        return REDACTED
    return plain_value(value)


def as_document(loaded: LoadedConfig) -> dict[str, Any]:
    """The effective configuration as a nested mapping keyed like the YAML file."""
    document: dict[str, Any] = {}
    for leaf in LEAVES:
        node = document
        for part in leaf.path[:-1]:
            node = node.setdefault(part, {})
        node[leaf.path[-1]] = leaf_value(loaded, leaf)
    return document


def render_json(loaded: LoadedConfig) -> str:
    """``{"config": {...}, "sources": {"slurm.ssh.address": "env SLURM_SSH_ADDRESS", ...}}``."""
    payload = {
        "config": as_document(loaded),
        "sources": {key: str(source) for key, source in loaded.sources.items()},
        "file": str(loaded.file) if loaded.file is not None else None,
    }
    return json.dumps(payload, indent=2)


def _scalar(value: object) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=1000)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def render_yaml(loaded: LoadedConfig) -> str:
    """The effective configuration as YAML, each setting followed by ``# <its source>``."""
    header = f"# effective configuration (file: {loaded.file or 'none'})"
    lines = [header]
    opened: tuple[str, ...] = ()
    for leaf in LEAVES:
        section = leaf.path[:-1]
        common = 0
        while common < min(len(opened), len(section)) and opened[common] == section[common]:
            common += 1
        for depth in range(common, len(section)):
            lines.append("  " * depth + f"{section[depth]}:")
        opened = section
        indent = "  " * len(section)
        value = leaf_value(loaded, leaf)
        comment = f"  # {loaded.sources[leaf.key]}"
        if isinstance(value, dict) and value:
            lines.append(f"{indent}{leaf.path[-1]}:{comment}")
            lines.extend(f"{indent}  {_scalar(k)}: {_scalar(v)}" for k, v in value.items())
        else:
            lines.append(f"{indent}{leaf.path[-1]}: {_scalar(value)}{comment}")
    return "\n".join(lines) + "\n"
