"""requirements.lock is what `./dev` installs: it must pin, with hashes, a version inside
pyproject.toml's range for every dependency of every extra (so `./dev lock` was run after the
last change of a range), and the build backend."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def lock_pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    text = (ROOT / "requirements.lock").read_text()
    for block in re.split(r"\n(?=\S)", text):
        match = PIN.match(block)
        if match:
            assert "--hash=sha256:" in block, f"{match[1]} is pinned without a hash"
            pins[canonicalize_name(match[1])] = match[2]
    return pins


def locked_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    lines = list(project["project"]["dependencies"])
    for extra in project["project"]["optional-dependencies"].values():
        lines += extra
    lines += project["build-system"]["requires"]
    for line in (ROOT / "requirements.in").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            lines.append(line)
    return [Requirement(line) for line in lines]


def test_every_requirement_is_pinned_inside_its_range() -> None:
    pins = lock_pins()
    environment = default_environment()
    for requirement in locked_requirements():
        if requirement.marker and not requirement.marker.evaluate(dict(environment)):
            continue
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not in requirements.lock: run ./dev lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {name}=={pins[name]}, outside {requirement}: run ./dev lock"
        )
