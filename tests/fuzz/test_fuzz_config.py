"""The configuration, from the file, the environment and the flags, through the real loader and
the ``grid-supervisor config check`` entry point: whatever an operator (or a hostile file) hands
it, the answer is a configuration or exit 2 with one ``key: reason`` line per problem, never a
traceback, and never a secret in the output."""

from __future__ import annotations

import contextlib
import io
import os
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from unittest import mock

import asyncssh
import pytest
import yaml
from hypothesis import event, given
from hypothesis import strategies as st

from cli.main import main
from config import ConfigError, load
from config.load import read_yaml_file
from config.settings import ENV_CONFIG_FILE, LEAF_BY_ENV, LEAVES
from config.show import render_json, render_yaml
from tests.fuzz.budget import fuzz

KEYS = [leaf.key for leaf in LEAVES]
ENV_NAMES = sorted(LEAF_BY_ENV)
FLAGS = sorted({flag for leaf in LEAVES for flag in leaf.flags})

# What crashed the loader once (issue 11), and what every setting's parser must survive.
PIECES = [
    "{address}",
    "{hex}",
    "{address.foo}",
    "{address[x]}",
    "{address:.2}",
    "{0}",
    "{",
    "}",
    "root",
    "99999999999999999d",
    "1h30m",
    "0",
    "-1",
    "1e400",
    "\x00",
    "\udcff",
    "\ud800",
    "~nouser/x",
    "~",
    "/tmp/",
    "/",
    "..",
    "0x" + "ab" * 20,
    "127.0.0.1:3000",
    "[::1]:22",
    ":",
    "https://",
    "ws://h",
    "true",
    "=",
    ",",
    "\n",
    " ",
    "²",
    "٣",
]
LONG = st.sampled_from([("9", 5000), ("x", 300), ("a/", 2100)]).map(
    lambda piece: piece[0] * piece[1]
)
texts = st.lists(st.sampled_from(PIECES) | LONG | st.text(max_size=6), max_size=6).map("".join)
scalars = (
    texts
    | st.integers()
    | st.sampled_from([4400, 5000]).map(lambda digits: 10**digits)
    | st.floats()
    | st.booleans()
    | st.none()
)
raw_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(texts | st.integers(), children, max_size=3)
    ),
    max_leaves=8,
)


def _environ_text(text: str) -> bool:
    """What ``os.environ`` can hold: no NUL, surrogates only as undecodable bytes."""
    try:
        text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return False
    return "\0" not in text


env_values = texts.filter(_environ_text)


def deep(depth: int) -> object:
    """``{a: {a: ... 1}}`` ``depth`` mappings deep (built without recursion)."""
    node: object = 1
    for _ in range(depth):
        node = {"a": node}
    return node


def put(document: dict[str, Any], key: str, value: object) -> None:
    node = document
    *sections, last = key.split(".")
    for section in sections:
        child = node.get(section)
        if not isinstance(child, dict):
            child = node[section] = {}
        node = child
    node[last] = value


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A valid document (real key files) that each input changes in a few places."""
    folder = tmp_path_factory.mktemp("config")
    wallet = folder / "wallet.key"
    wallet.write_text("59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d\n")
    ssh = folder / "ssh_key"
    ssh.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key())
    return {
        "wallet": {"privateKeyFile": str(wallet)},
        "slurm": {
            "ssh": {"address": "127.0.0.1:2222", "adminUser": "slurm", "privateKeyFile": str(ssh)}
        },
        "grpc": {"publicAddress": "127.0.0.1:3000"},
        "state": {"folder": str(folder / "state")},
    }


changes = st.lists(
    st.tuples(st.sampled_from([*KEYS, "labels.a", "nosuch", "slurm.nosuch"]), raw_values),
    max_size=4,
)


def document_of(base: Mapping[str, Any], edits: list[tuple[str, object]]) -> dict[str, Any]:
    document = yaml.safe_load(yaml.safe_dump(dict(base)))
    for key, value in edits:
        put(document, key, value)
    return document


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Exactly the configuration variables ``values`` (the machine's own left out)."""
    clean = {k: v for k, v in os.environ.items() if k not in LEAF_BY_ENV and k != ENV_CONFIG_FILE}
    with mock.patch.dict(os.environ, {**clean, **values}, clear=True):
        yield


def check_command(argv: list[str]) -> tuple[int, str]:
    """``grid-supervisor config check ...``: its exit code and everything it printed."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(["config", "check", *argv])
        except SystemExit as exit_:  # argparse refusing a flag: its usage, exit 2
            code = exit_.code if isinstance(exit_.code, int) else 2
    return code, out.getvalue() + err.getvalue()


def assert_an_answer(code: int, printed: str) -> None:
    """Exit 0 with ``ok: ...``, or 2 with ``key: reason`` lines; printable as UTF-8."""
    printed.encode("utf-8")  # a lone surrogate is shown escaped, never written raw
    assert "Traceback" not in printed
    if code == 0:
        assert "ok: provider " in printed
        return
    assert code == 2, printed[-500:]
    if printed.startswith("invalid configuration ("):
        problems = printed.splitlines()[1:]
        assert problems
        for line in problems:
            if line.startswith("  "):
                assert ": " in line, line
    else:
        assert "usage:" in printed or "error:" in printed


@fuzz(0.5)
@given(
    changes,
    st.dictionaries(st.sampled_from(ENV_NAMES), env_values, max_size=3),
    st.lists(st.tuples(st.sampled_from(FLAGS), env_values), max_size=3),
    st.binary(min_size=8, max_size=16).map(lambda raw: raw.hex()),
)
def test_config_check_answers_exit_0_or_2_and_never_prints_a_secret(
    base: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
    edits: list[tuple[str, object]],
    env: dict[str, str],
    flags: list[tuple[str, str]],
    secret: str,
) -> None:
    document = document_of(base, edits)
    put(document, "slurm.ssh.privateKeyBase64", secret)  # a secret that must never show
    file = tmp_path_factory.mktemp("check") / "config.yaml"
    try:
        text = yaml.safe_dump(document, allow_unicode=True)
    except ValueError:  # an integer of 4,300 digits or more: YAML text cannot hold it
        event("not YAML")
        return
    file.write_text(text, encoding="utf-8", errors="surrogateescape")
    argv = [str(file), *(part for flag, value in flags for part in (f"{flag}={value}",))]
    with environment(env):
        code, printed = check_command(argv)
    event(f"exit {code}")
    assert_an_answer(code, printed)
    assert secret not in printed


@fuzz()
@given(
    changes,
    st.dictionaries(st.sampled_from(ENV_NAMES), env_values, max_size=3),
    st.dictionaries(st.sampled_from(KEYS), env_values | st.lists(env_values, max_size=2)),
)
def test_the_loader_answers_a_config_or_a_config_error(
    base: dict[str, Any],
    edits: list[tuple[str, object]],
    env: dict[str, str],
    flags: dict[str, object],
) -> None:
    try:
        loaded = load(document=document_of(base, edits), env=env, flags=flags)
    except ConfigError as error:
        event("refused")
        assert error.problems and all(": " in problem for problem in error.problems)
        error.render().encode("utf-8")
        return
    event("loaded")
    shown = render_yaml(loaded)
    shown.encode("utf-8")
    render_json(loaded).encode("utf-8")
    assert "Traceback" not in shown


YAML_PIECES = [
    "{",
    "}",
    "[",
    "]",
    ": ",
    "- ",
    "\n",
    "  ",
    "\t",
    "&a ",
    "*a",
    "!!float ",
    "!!int ",
    "!!binary ",
    "!!timestamp ",
    "!!python/object ",
    "2001-13-45",
    "1:2:3",
    "0x" + "f" * 200,
    "9" * 5000,
    "'",
    '"',
    "\\ud800",
    "labels",
    "slurm",
    "reaper",
    "interval",
    "#",
    "---",
    "...",
    "? ",
    "%YAML 1.1\n",
]
yaml_texts = st.lists(st.sampled_from(YAML_PIECES) | st.text(max_size=4), max_size=30).map("".join)


@fuzz()
@given(yaml_texts | st.text(), st.integers(0, 40))
def test_any_file_text_is_read_or_refused_with_a_config_error(
    tmp_path_factory: pytest.TempPathFactory, text: str, depth: int
) -> None:
    folder = tmp_path_factory.mktemp("yaml")
    for name, content in (("a.yaml", text), ("b.yaml", yaml.safe_dump({"labels": deep(depth)}))):
        path = folder / name
        path.write_text(content, encoding="utf-8", errors="surrogateescape")
        try:
            read_yaml_file(path)
        except ConfigError as error:
            assert error.problems
            error.render().encode("utf-8")


def test_the_secret_used_by_the_fuzz_check_is_really_refused_or_hidden(
    base: dict[str, Any], tmp_path: Path
) -> None:
    """The property above can fail: a secret in a problem line would be printed."""
    secret = secrets.token_hex(12)
    document = document_of(base, [("slurm.ssh.privateKeyBase64", secret)])
    file = tmp_path / "config.yaml"
    file.write_text(yaml.safe_dump(document))
    code, printed = check_command([str(file)])
    assert code == 2 and "slurm.ssh" in printed and secret not in printed
