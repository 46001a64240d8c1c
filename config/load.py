"""Loading the configuration from its sources, by precedence: flags > environment > file > defaults.

* **File**: YAML, named by ``--config FILE`` or ``GRID_SUPERVISOR_CONFIG``. An unknown key is an
  error that names its full path and suggests the closest known key.
* **Environment**: ``GRID_SUPERVISOR_`` + the path in upper snake case
  (``GRID_SUPERVISOR_SLURM_SSH_ADDRESS``); the Go supervisor's names (``SLURM_SSH_ADDRESS``,
  ``ETH_PRIVATE_KEY`` ...) work too, the systematic name winning when both are set.
* **Flags**: ``--`` + the path (``--slurm.ssh.address``, or kebab-case ``--slurm.ssh.admin-user``).

An empty value (``""`` in the file, an empty variable, an empty flag) counts as not set. Mappings
(``labels``, ``benchmark.env``, ``slurm.customerUsers.byAddress``) merge key by key across the
sources, the higher source winning on the same key; every other setting takes the value of its
highest source whole.

Every problem found is collected, and one ``ConfigError`` lists them all.
"""

from __future__ import annotations

import argparse
import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml

from config.errors import ConfigError
from config.schema import Config
from config.settings import (
    ENV_CONFIG_FILE,
    ENV_PREFIX,
    LEAF_BY_ENV,
    LEAF_BY_KEY,
    LEAVES,
    SECTION_KEYS,
    Leaf,
)
from config.values import plain_value

SourceKind = Literal["default", "file", "env", "flag"]


class Source(msgspec.Struct, frozen=True):
    """Where a setting's value came from: ``default``, ``file PATH``, ``env NAME``, ``flag --X``."""

    kind: SourceKind
    name: str = ""
    #: For a mapping merged from several sources: the lower ones, as text, lowest first.
    merged_over: tuple[str, ...] = ()

    def __str__(self) -> str:
        own = self.kind if not self.name else f"{self.kind} {self.name}"
        return " + ".join((*self.merged_over, own))


class LoadedConfig(msgspec.Struct, frozen=True):
    """The effective configuration, where each setting came from, and the file read (if any)."""

    config: Config
    #: Setting key (``"slurm.ssh.address"``) -> its source. A mapping merged from several sources
    #: gets the highest one, with the others in ``merged_over``.
    sources: dict[str, Source]
    file: Path | None = None
    #: Things that do not stop the supervisor but look like mistakes.
    warnings: tuple[str, ...] = ()


_Candidate = tuple[object, Source]


# --------------------------------------------------------------------------- the file


MAX_DEPTH = 16
"""How deep a configuration file may nest mappings and lists (the schema needs 4)."""
_LONG_SCALAR = 100
"""A YAML integer or date longer than this is read as its text (``int()`` of 5,000 digits
raises, and a 3,000-part sexagesimal number is astronomically large)."""


_SCALAR_CRASHES = (ValueError, IndexError, AttributeError, OverflowError, TypeError)
"""What PyYAML's scalar constructors raise for text they cannot read (``!!int ""`` is an
IndexError, ``!!timestamp x`` an AttributeError, a 5,000-digit integer a ValueError)."""


class _ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader, minus its crashes: an integer too long to be one, a date that is
    no date and a ``!!float`` or ``!!int`` that is no number become text (the setting's own
    parser then says what it expected), instead of an exception escaping from deep inside
    PyYAML."""

    def int_or_text(self, node: yaml.ScalarNode) -> int | str:
        text = self.construct_scalar(node)
        if len(text) > _LONG_SCALAR:
            return text
        try:
            return self.construct_yaml_int(node)
        except _SCALAR_CRASHES:
            return text

    def float_or_text(self, node: yaml.ScalarNode) -> float | str:
        try:
            return self.construct_yaml_float(node)
        except _SCALAR_CRASHES:
            return self.construct_scalar(node)

    def timestamp_or_text(self, node: yaml.ScalarNode) -> object:
        try:
            return self.construct_yaml_timestamp(node)
        except _SCALAR_CRASHES:
            return self.construct_scalar(node)


_ConfigLoader.add_constructor("tag:yaml.org,2002:int", _ConfigLoader.int_or_text)
_ConfigLoader.add_constructor("tag:yaml.org,2002:float", _ConfigLoader.float_or_text)
_ConfigLoader.add_constructor("tag:yaml.org,2002:timestamp", _ConfigLoader.timestamp_or_text)


def _too_deep(text: str) -> str | None:
    """Where the document nests deeper than :data:`MAX_DEPTH` (the keys leading there), or None.

    It reads PyYAML's event stream, which needs no recursion; building the document does, and
    a ``labels`` 3,000 mappings deep would end in a RecursionError."""
    frames: list[list[object]] = []  # [is a mapping, the next node is a key, the last key]

    def node_done(value: object) -> None:
        if frames and frames[-1][0]:
            if frames[-1][1]:
                frames[-1][2] = str(value) if isinstance(value, str) else "?"
            frames[-1][1] = not frames[-1][1]

    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            if len(frames) == MAX_DEPTH:
                keys = [str(frame[2]) for frame in frames if frame[0]] or ["config file"]
                if len(keys) == 1:
                    return keys[0]
                return f"{keys[0]} (at {'.'.join(keys[:4])}{'...' if len(keys) > 4 else ''})"
            frames.append([isinstance(event, yaml.MappingStartEvent), True, "?"])
        elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            frames.pop()
            node_done(None)
        elif isinstance(event, yaml.ScalarEvent):
            node_done(event.value)
        elif isinstance(event, yaml.AliasEvent):
            node_done(None)
    return None


def read_yaml_file(path: Path) -> object:
    """The YAML document in ``path``; an unreadable or malformed file is a ``ConfigError``.

    A YAML syntax error is reported by position and problem only, never with the text around it,
    which could be a private key. A document nested deeper than :data:`MAX_DEPTH` is refused,
    naming the key where it goes too deep.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError) as error:  # ValueError: a NUL in the path
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        if not isinstance(error, OSError | UnicodeDecodeError):
            reason = "not a usable path"
        raise ConfigError([f"config file {str(path)!r}: cannot read: {reason}"]) from None
    try:
        deep = _too_deep(text)
        if deep is not None:
            raise ConfigError([f"{deep}: nested more than {MAX_DEPTH} levels deep"])
        return yaml.load(text, Loader=_ConfigLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = error.problem or "invalid YAML"
        raise ConfigError(
            [f"config file {str(path)!r}: invalid YAML at {where}{problem}"]
        ) from None
    except (yaml.YAMLError, RecursionError, *_SCALAR_CRASHES):
        raise ConfigError([f"config file {str(path)!r}: invalid YAML"]) from None


def _did_you_mean(word: str, choices: frozenset[str] | set[str]) -> str:
    by_lower = {choice.lower(): choice for choice in choices}
    if word.lower() in by_lower:
        return f" (did you mean {by_lower[word.lower()]!r}?)"
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def flatten_document(document: object, problems: list[str]) -> dict[str, object]:
    """Setting key -> raw value, from a parsed YAML document; unknown keys go to ``problems``."""
    values: dict[str, object] = {}
    if document is None:
        return values
    if not isinstance(document, dict):
        problems.append("config file: expected a mapping of sections at the top level")
        return values
    _flatten(document, (), values, problems)
    return values


def _flatten(
    node: dict[Any, Any],
    path: tuple[str, ...],
    values: dict[str, object],
    problems: list[str],
) -> None:
    allowed = SECTION_KEYS[path]
    for key, value in node.items():
        here = ".".join((*path, str(key)))
        if not isinstance(key, str) or key not in allowed:
            hint = _did_you_mean(str(key), allowed)
            problems.append(f"{here}: unknown key{hint}")
            continue
        child = (*path, key)
        leaf = LEAF_BY_KEY.get(".".join(child))
        if leaf is not None:
            values[leaf.key] = value
        elif value is None:
            continue  # an empty section: every setting in it keeps its default
        elif not isinstance(value, dict):
            problems.append(
                f"{here}: expected a section (a mapping of settings), got {_show(value)}"
            )
        else:
            _flatten(value, child, values, problems)


# --------------------------------------------------------------------------- the environment


def environment_values(env: Mapping[str, str]) -> dict[str, _Candidate]:
    """Setting key -> (raw text, source) from the environment; the systematic name wins."""
    values: dict[str, _Candidate] = {}
    for leaf in LEAVES:
        for name in leaf.env_names:
            raw = env.get(name)
            if raw is not None and raw.strip():
                values[leaf.key] = (raw, Source("env", name))
                break
    return values


def unknown_environment(env: Mapping[str, str]) -> list[str]:
    """Warnings for ``GRID_SUPERVISOR_*`` variables that set nothing (likely misspelt)."""
    known = {name for name in LEAF_BY_ENV if name.startswith(ENV_PREFIX)} | {ENV_CONFIG_FILE}
    warnings = []
    for name in sorted(env):
        if name.startswith(ENV_PREFIX) and name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.8)
            hint = f" (did you mean {close[0]}?)" if close else ""
            warnings.append(f"environment variable {name} sets nothing{hint}")
    return warnings


# --------------------------------------------------------------------------- merging


def _is_unset(raw: object) -> bool:
    return raw is None or (isinstance(raw, str) and not raw.strip()) or raw == []


def _show(raw: object) -> str:
    if isinstance(raw, dict):
        return "a mapping"
    if isinstance(raw, list):
        return "a list"
    if isinstance(raw, int) and raw.bit_length() > 256:  # repr() gives up past 4,300 digits
        return f"an integer of about {int(raw.bit_length() * 0.30103)} digits"
    text = repr(raw)
    return text if len(text) <= 80 else text[:77] + "..."


def _problem(leaf: Leaf, expected: str, raw: object, source: Source) -> str:
    message = f"{leaf.key}: {expected}"
    if not leaf.secret:
        message += f", got {_show(raw)}"
    if source.kind in ("env", "flag"):
        message += f" (from {source})"
    return message


def _unusable_text(raw: object) -> str | None:
    """Why a raw value holds text no setting can take, or None: a NUL byte (no path, argument
    or name can carry one) or a lone surrogate (not UTF-8: it cannot be printed or sent)."""
    if isinstance(raw, dict):
        texts: list[object] = [*raw.keys(), *raw.values()]
    else:
        texts = list(raw) if isinstance(raw, list) else [raw]
    for text in texts:
        if isinstance(text, str):
            if "\0" in text:
                return "expected text without NUL bytes"
            if any("\ud800" <= char <= "\udfff" for char in text):
                return "expected UTF-8 text (it holds a lone surrogate)"
    return None


def _resolve_scalar(
    leaf: Leaf, candidates: list[_Candidate], problems: list[str]
) -> tuple[object, Source]:
    if not candidates:
        return leaf.default, Source("default")
    raw, source = candidates[-1]
    unusable = _unusable_text(raw)
    if unusable is not None:
        problems.append(_problem(leaf, unusable, raw, source))
        return leaf.default, source
    try:
        return leaf.parse(raw), source
    except ValueError as error:
        problems.append(_problem(leaf, str(error), raw, source))
        return leaf.default, source


def _resolve_mapping(
    leaf: Leaf, candidates: list[_Candidate], problems: list[str]
) -> tuple[object, Source]:
    if not candidates:
        return leaf.default, Source("default")
    merged: dict[str, str] = {}
    for raw, source in candidates:
        unusable = _unusable_text(raw)
        if unusable is not None:
            problems.append(_problem(leaf, unusable, raw, source))
            continue
        try:
            parsed = leaf.parse_raw(raw)
        except ValueError as error:
            problems.append(_problem(leaf, str(error), raw, source))
            continue
        assert isinstance(parsed, dict)
        merged.update(parsed)
    try:
        value = leaf.setting.refine(merged) if leaf.setting.refine is not None else merged
    except ValueError as error:
        problems.append(f"{leaf.key}: {error}")
        value = leaf.default
    *lower, highest = [source for _, source in candidates]
    return value, Source(highest.kind, highest.name, tuple(str(source) for source in lower))


def _build(section: type[msgspec.Struct], values: Mapping[tuple[str, ...], object]) -> Any:
    """Construct ``section`` from leaf values keyed by Python attribute path."""
    kwargs: dict[str, object] = {}
    for field in msgspec.structs.fields(section):
        nested = {attrs[1:]: value for attrs, value in values.items() if attrs[0] == field.name}
        # A leaf holds its value under the empty path; a section is built from its own leaves.
        kwargs[field.name] = nested[()] if () in nested else _build(field.type, nested)
    return section(**kwargs)


def _ways(*keys: str) -> str:
    return "; ".join(LEAF_BY_KEY[key].ways_to_set() for key in keys)


def cross_field_problems(config: Config) -> list[str]:
    """Rules that tie two settings together (exactly one of, both or neither)."""
    problems = []
    wallet = config.wallet
    if (wallet.private_key is None) == (wallet.private_key_file is None):
        problems.append(
            "wallet: set exactly one of wallet.privateKey and wallet.privateKeyFile ("
            + _ways("wallet.privateKeyFile", "wallet.privateKey")
            + ")"
        )
    ssh = config.slurm.ssh
    if (ssh.private_key_file is None) == (ssh.private_key_base64 is None):
        problems.append(
            "slurm.ssh: set exactly one of slurm.ssh.privateKeyFile and "
            "slurm.ssh.privateKeyBase64 ("
            + _ways("slurm.ssh.privateKeyFile", "slurm.ssh.privateKeyBase64")
            + ")"
        )
    if ssh.disable_host_key_check and ssh.known_hosts_file is not None:
        problems.append(
            "slurm.ssh: knownHostsFile and disableHostKeyCheck contradict each other; drop one"
        )
    tls = config.grpc.tls
    if (tls.cert_file is None) != (tls.key_file is None):
        problems.append("grpc.tls: set both certFile and keyFile, or neither")
    auth = config.grpc.reporter_auth
    if auth.require and auth.secret_file is None:
        problems.append(
            "grpc.reporterAuth.require: needs grpc.reporterAuth.secretFile ("
            + _ways("grpc.reporterAuth.secretFile")
            + ")"
        )
    return problems


def cross_field_warnings(config: Config) -> list[str]:
    warnings = []
    sbatch_tls = config.sbatch.tls
    if not sbatch_tls.enable and (sbatch_tls.ca_file is not None or sbatch_tls.insecure):
        warnings.append("sbatch.tls: caFile and insecure have no effect while enable is false")
    ucx = config.benchmark.ucx
    if not ucx.enable and (ucx.affinity or ucx.transport):
        warnings.append(
            "benchmark.ucx: affinity and transport have no effect while enable is false"
        )
    if config.sbatch.tls.insecure:
        warnings.append("sbatch.tls.insecure: the sbatch service's certificate is not verified")
    if config.slurm.ssh.disable_host_key_check:
        warnings.append("slurm.ssh.disableHostKeyCheck: the login node's host key is not verified")
    return warnings


def load(
    *,
    file: Path | None = None,
    document: object = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, object] | None = None,
) -> LoadedConfig:
    """Merge the sources into one ``Config``; raise ``ConfigError`` listing every problem.

    ``file`` is read as YAML; ``document`` is an already-parsed document used instead (tests and
    other callers that hold a mapping). ``env`` defaults to ``os.environ``; ``flags`` maps setting
    keys to raw flag values (text, or a list of ``k=v`` texts for mappings).
    """
    environ = os.environ if env is None else env
    problems: list[str] = []
    file_source = Source("file", str(file) if file is not None else "<mapping>")
    if file is not None:
        document = read_yaml_file(file)
    file_values = flatten_document(document, problems)
    env_values = environment_values(environ)

    values: dict[tuple[str, ...], object] = {}
    sources: dict[str, Source] = {}
    for leaf in LEAVES:
        candidates: list[_Candidate] = []
        if leaf.key in file_values:
            candidates.append((file_values[leaf.key], file_source))
        if leaf.key in env_values:
            candidates.append(env_values[leaf.key])
        if flags is not None and leaf.key in flags:
            candidates.append((flags[leaf.key], Source("flag", leaf.flags[0])))
        candidates = [(raw, source) for raw, source in candidates if not _is_unset(raw)]
        resolve = _resolve_mapping if leaf.is_mapping else _resolve_scalar
        value, source = resolve(leaf, candidates, problems)
        if leaf.required and not candidates:
            problems.append(f"{leaf.key}: required ({leaf.setting.help}); {leaf.ways_to_set()}")
        values[leaf.attrs] = value
        sources[leaf.key] = source

    if problems:
        raise ConfigError(problems)
    config: Config = _build(Config, values)
    problems = cross_field_problems(config)
    if problems:
        raise ConfigError(problems)
    warnings = unknown_environment(environ) + cross_field_warnings(config)
    return LoadedConfig(config, sources, file, tuple(warnings))


def config_from_mapping(document: Mapping[str, object]) -> Config:
    """A ``Config`` from a YAML-shaped mapping and the defaults only (no environment, no flags)."""
    return load(document=dict(document), env={}).config


# --------------------------------------------------------------------------- the command line


def add_config_arguments(parser: argparse.ArgumentParser, *, config_option: bool = True) -> None:
    """Add ``--config FILE`` (unless ``config_option`` is false) and one flag per setting.

    Read them back with ``load_from_args``. Boolean flags take an optional value
    (``--benchmark.disable`` or ``--benchmark.disable=false``); mapping flags repeat
    (``--label zone=eu --label gpu=rtx3090``).
    """
    if config_option:
        parser.add_argument(
            "--config",
            dest="config_file",
            metavar="FILE",
            type=Path,
            default=None,
            help=f"YAML configuration file (default: ${ENV_CONFIG_FILE} if set)",
        )
    group = parser.add_argument_group(
        "settings", "each overrides the environment and the config file (see config/example.yaml)"
    )
    for leaf in LEAVES:
        help_text = leaf.setting.help.replace("%", "%%")
        if leaf.default not in (None, msgspec.NODEFAULT, "", {}) and not leaf.secret:
            help_text += f" [default: {_default_text(leaf.default)}]"
        if leaf.is_mapping:
            group.add_argument(
                *leaf.flags, dest=leaf.dest, action="append", metavar=leaf.metavar, help=help_text
            )
        elif leaf.is_bool:
            group.add_argument(
                *leaf.flags,
                dest=leaf.dest,
                nargs="?",
                const="true",
                metavar=leaf.metavar,
                help=help_text,
            )
        else:
            group.add_argument(*leaf.flags, dest=leaf.dest, metavar=leaf.metavar, help=help_text)


def _default_text(value: object) -> str:
    plain = plain_value(value)
    return ("true" if plain else "false") if isinstance(plain, bool) else str(plain)


def flag_values(args: argparse.Namespace) -> dict[str, object]:
    """Setting key -> raw flag value, for the flags given on the command line."""
    given: dict[str, object] = {}
    for leaf in LEAVES:
        raw = getattr(args, leaf.dest, None)
        if raw is not None:
            given[leaf.key] = raw
    return given


def config_file_from(args: argparse.Namespace, env: Mapping[str, str]) -> Path | None:
    """``--config FILE``, else ``$GRID_SUPERVISOR_CONFIG``, else no file."""
    path: Path | None = getattr(args, "config_file", None)
    if path is None and env.get(ENV_CONFIG_FILE, "").strip():
        path = Path(env[ENV_CONFIG_FILE].strip())
    return path


def load_from_args(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> LoadedConfig:
    """The configuration a command was given (see ``add_config_arguments``).

    Raises ``ConfigError``; a command prints ``error.render()`` to stderr and exits
    ``EXIT_BAD_CONFIG`` (2).
    """
    environ = os.environ if env is None else env
    return load(file=config_file_from(args, environ), env=environ, flags=flag_values(args))
