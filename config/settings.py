"""The schema flattened into leaves: one ``Leaf`` per setting, with its key, env names and flags.

``config.schema`` is walked once, at import. Everything the loader, the command line and
``config show`` need about a setting comes from its ``Leaf``, so a setting is described once, in
the schema, and never written again by hand:

=========================  ============================================================
YAML key (path)            ``slurm.ssh.adminUser`` (the Struct field names, camelCase)
environment variable       ``GRID_SUPERVISOR_SLURM_SSH_ADMIN_USER``, then the Go names
flag                       ``--slurm.ssh.adminUser`` and its kebab twin
                           ``--slurm.ssh.admin-user``
=========================  ============================================================
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal, Union, get_args, get_origin

import msgspec

from config.schema import Config, Section, Setting
from config.values import (
    EthAddress,
    GasLimit,
    HostPort,
    HttpUrl,
    ListenAddress,
    Parser,
    Secret,
    SshAddress,
    Wei,
    WsUrl,
    parse_bool,
    parse_duration,
    parse_eth_address,
    parse_gas_limit,
    parse_host_port,
    parse_http_url,
    parse_int,
    parse_listen_address,
    parse_mapping,
    parse_path,
    parse_secret,
    parse_ssh_address,
    parse_str,
    parse_text_list,
    parse_wei,
    parse_ws_url,
)

ENV_PREFIX = "GRID_SUPERVISOR_"
#: Names the configuration file when ``--config`` is not given.
ENV_CONFIG_FILE = "GRID_SUPERVISOR_CONFIG"

_PARSERS: dict[object, Parser] = {
    str: parse_str,
    bool: parse_bool,
    int: parse_int,
    Wei: parse_wei,
    Path: parse_path,
    Secret: parse_secret,
    HostPort: parse_host_port,
    ListenAddress: parse_listen_address,
    SshAddress: parse_ssh_address,
    HttpUrl: parse_http_url,
    WsUrl: parse_ws_url,
    EthAddress: parse_eth_address,
    GasLimit: parse_gas_limit,
    timedelta: parse_duration,
}

_METAVARS: dict[object, str] = {
    Wei: "WEI",
    Path: "PATH",
    HostPort: "HOST:PORT",
    ListenAddress: "HOST:PORT",
    SshAddress: "HOST[:PORT]",
    HttpUrl: "URL",
    WsUrl: "URL",
    EthAddress: "0xADDRESS",
    GasLimit: "estimate|GAS",
    timedelta: "DURATION",
    int: "INT",
    bool: "BOOL",
}

#: Extra flag spellings, beyond the ones derived from the path.
_EXTRA_FLAGS: dict[str, tuple[str, ...]] = {"labels": ("--label",)}

_CAMEL_HUMP = re.compile(r"(?<=[a-z0-9])([A-Z])")


def upper_snake(part: str) -> str:
    """``"cpuPerMin"`` -> ``"CPU_PER_MIN"``."""
    return _CAMEL_HUMP.sub(r"_\1", part).upper()


def kebab(part: str) -> str:
    """``"adminUser"`` -> ``"admin-user"``."""
    return _CAMEL_HUMP.sub(lambda match: "-" + match.group(1).lower(), part)


class Leaf(msgspec.Struct, frozen=True):
    """One setting: where it sits in the schema, its type, default and how to read it."""

    path: tuple[str, ...]
    attrs: tuple[str, ...]
    value_type: object
    optional: bool
    default: object
    setting: Setting
    parse_raw: Parser

    @property
    def key(self) -> str:
        return ".".join(self.path)

    @property
    def required(self) -> bool:
        return self.default is msgspec.NODEFAULT

    @property
    def secret(self) -> bool:
        return self.setting.secret

    @property
    def is_mapping(self) -> bool:
        return get_origin(self.value_type) is dict

    @property
    def is_bool(self) -> bool:
        return self.value_type is bool

    @property
    def env_name(self) -> str:
        return ENV_PREFIX + "_".join(upper_snake(part) for part in self.path)

    @property
    def env_names(self) -> tuple[str, ...]:
        """The systematic name first: it wins over a Go alias when both are set."""
        return (self.env_name, *self.setting.go_env)

    @property
    def flags(self) -> tuple[str, ...]:
        camel = "--" + self.key
        dashed = "--" + ".".join(kebab(part) for part in self.path)
        spellings = (camel,) if dashed == camel else (camel, dashed)
        return spellings + _EXTRA_FLAGS.get(self.key, ())

    @property
    def dest(self) -> str:
        """The argparse destination of this setting's flags."""
        return "config:" + self.key

    @property
    def metavar(self) -> str:
        """How ``--help`` names the value: ``WEI``, ``DURATION``, ``{container,native}`` ..."""
        if self.is_mapping:
            return "KEY=VALUE"
        if get_origin(self.value_type) is Literal:
            return "{" + ",".join(str(choice) for choice in get_args(self.value_type)) + "}"
        return _METAVARS.get(self.value_type, "VALUE")

    def parse(self, raw: object) -> object:
        """Parse and refine one raw value; raises ``ValueError(expected ...)``."""
        value = self.parse_raw(raw)
        return self.setting.refine(value) if self.setting.refine is not None else value

    def ways_to_set(self) -> str:
        env = self.env_name
        if self.setting.go_env:
            env += " (or " + ", ".join(self.setting.go_env) + ")"
        return f"set {self.key} in the config file, {env} in the environment, or {self.flags[0]}"


def _choice_parser(choices: tuple[str, ...]) -> Parser:
    def parse_choice(raw: object) -> str:
        if isinstance(raw, str) and raw.strip().lower() in choices:
            return raw.strip().lower()
        raise ValueError("expected one of " + ", ".join(choices))

    return parse_choice


def _parser_for(value_type: object) -> Parser:
    if get_origin(value_type) is dict:
        return parse_mapping
    if get_origin(value_type) is tuple:
        return parse_text_list
    if get_origin(value_type) is Literal:
        return _choice_parser(tuple(str(choice) for choice in get_args(value_type)))
    try:
        return _PARSERS[value_type]
    except KeyError:
        raise TypeError(f"no parser for setting type {value_type!r}") from None


def _unwrap(annotation: object) -> tuple[object, bool, Setting | None]:
    """``Annotated[X | None, Setting(...)]`` -> ``(X, True, Setting(...))``."""
    setting = None
    if get_origin(annotation) is Annotated:
        metadata = getattr(annotation, "__metadata__", ())
        setting = next((item for item in metadata if isinstance(item, Setting)), None)
        annotation = get_args(annotation)[0]
    optional = False
    if get_origin(annotation) in (Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        optional = len(members) < len(get_args(annotation))
        if len(members) != 1:
            raise TypeError(f"unsupported union in the schema: {annotation!r}")
        annotation = members[0]
    return annotation, optional, setting


def _walk(section: type[Section], path: tuple[str, ...], attrs: tuple[str, ...]) -> list[Leaf]:
    leaves: list[Leaf] = []
    for field in msgspec.structs.fields(section):
        value_type, optional, setting = _unwrap(field.type)
        here, attr = (*path, field.encode_name), (*attrs, field.name)
        if isinstance(value_type, type) and issubclass(value_type, Section):
            leaves.extend(_walk(value_type, here, attr))
            continue
        if setting is None:
            raise TypeError(f"schema field {'.'.join(here)} has no Setting")
        default: object = field.default
        if field.default_factory is not msgspec.NODEFAULT:
            factory = typing.cast(Callable[[], object], field.default_factory)
            default = factory()
        leaves.append(
            Leaf(here, attr, value_type, optional, default, setting, _parser_for(value_type))
        )
    return leaves


#: Every setting, in schema order.
LEAVES: tuple[Leaf, ...] = tuple(_walk(Config, (), ()))
#: Setting key (``"slurm.ssh.address"``) -> its leaf.
LEAF_BY_KEY: dict[str, Leaf] = {leaf.key: leaf for leaf in LEAVES}
#: Section path -> the YAML keys allowed in it (sections and settings), for unknown-key checks.
SECTION_KEYS: dict[tuple[str, ...], frozenset[str]] = {}
#: Systematic and Go environment variable names -> the setting they set.
LEAF_BY_ENV: dict[str, Leaf] = {}


def _index() -> None:
    children: dict[tuple[str, ...], set[str]] = {}
    for leaf in LEAVES:
        for depth in range(len(leaf.path)):
            children.setdefault(leaf.path[:depth], set()).add(leaf.path[depth])
        for name in leaf.env_names:
            if name in LEAF_BY_ENV:
                raise TypeError(f"environment variable {name} names two settings")
            LEAF_BY_ENV[name] = leaf
    SECTION_KEYS.update({path: frozenset(keys) for path, keys in children.items()})


_index()
