"""Regenerate the committed Python code for the .proto sources in this folder.

The runtime never needs ``grpcio-tools``: the generated modules (``*_pb2.py``, ``*_pb2.pyi`` and
the grpclib stubs/bases ``*_grpc.py``) are committed next to their ``.proto`` file. This script
rebuilds them, deterministically, so a reviewer can check that they match their sources::

    .venv/bin/python -m protos.generate          # rewrite what changed
    .venv/bin/python -m protos.generate --check  # exit 1 if the committed files are stale

``protoc`` names modules after the proto path (``supervisor.v1alpha1.job_pb2``), as if
``protos/`` were on ``sys.path``. Here the code lives in the ``protos`` package, so the generated
module references are rewritten to ``protos.supervisor.v1alpha1.job_pb2`` and every folder gets an
empty ``__init__.py``. The gRPC full method names (``/supervisor.v1alpha1.JobAPI/SetJobStatus``)
come from the proto ``package`` statement and are not touched.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PROTOS_DIR = Path(__file__).resolve().parent
PACKAGE = PROTOS_DIR.name
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_grpc.py")
GRPCLIB_PLUGIN = "protoc-gen-grpclib_python"


class GenerateError(Exception):
    """protoc or its grpclib plugin is missing or failed."""


def proto_sources(root: Path = PROTOS_DIR) -> list[Path]:
    """The .proto files under ``root``, relative to it, in a stable order."""
    return sorted(path.relative_to(root) for path in root.rglob("*.proto"))


def _grpclib_plugin() -> Path:
    """The grpclib protoc plugin: next to this interpreter first (the venv), then on PATH."""
    beside = Path(sys.executable).parent / GRPCLIB_PLUGIN
    if beside.exists():
        return beside
    found = shutil.which(GRPCLIB_PLUGIN)
    if found is None:
        raise GenerateError(f"{GRPCLIB_PLUGIN} not found (install the dev extras)")
    return Path(found)


def _run_protoc(sources: list[Path], root: Path, out_dir: Path) -> None:
    plugin = _grpclib_plugin()
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{root}",
        f"--plugin={GRPCLIB_PLUGIN}={plugin}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpclib_python_out={out_dir}",
        *(str(source) for source in sources),
    ]
    env = {**os.environ, "PATH": f"{plugin.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise GenerateError(f"protoc failed ({result.returncode}): {result.stderr.strip()}")


def qualify_modules(text: str, top_packages: set[str], package: str = PACKAGE) -> str:
    """Prefix generated module paths (``a.b.c_pb2``) whose first part is a proto top package.

    Only dotted names ending in ``_pb2`` are touched, so method paths such as
    ``'/supervisor.v1alpha1.JobAPI/SetJobStatus'`` and ``# source:`` comments stay as they are.
    """
    if not top_packages:
        return text
    roots = "|".join(sorted(re.escape(name) for name in top_packages))
    pattern = re.compile(rf"(?<![\w./])((?:{roots})(?:\.\w+)*\.\w+_pb2)\b")
    return pattern.sub(rf"{package}.\1", text)


def render(root: Path = PROTOS_DIR) -> dict[Path, bytes]:
    """Every generated file (relative path -> content), without touching ``root``.

    This includes an empty ``__init__.py`` in each folder that holds generated code.
    """
    sources = proto_sources(root)
    if not sources:
        return {}
    top_packages = {source.parts[0] for source in sources}
    files: dict[Path, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="protoc-") as tmp:
        out_dir = Path(tmp)
        _run_protoc(sources, root, out_dir)
        for path in sorted(out_dir.rglob("*")):
            if path.is_file():
                relative = path.relative_to(out_dir)
                text = qualify_modules(path.read_text(encoding="utf-8"), top_packages)
                files[relative] = text.encode("utf-8")
    for relative in list(files):
        for folder in relative.parents:
            if folder != Path("."):
                files.setdefault(folder / "__init__.py", b"")
    return files


def stale_files(files: dict[Path, bytes], root: Path = PROTOS_DIR) -> list[Path]:
    """Relative paths whose committed content differs from ``files``, plus orphaned outputs."""
    stale = [
        relative
        for relative, content in sorted(files.items())
        if not (root / relative).is_file() or (root / relative).read_bytes() != content
    ]
    orphans = [
        path.relative_to(root)
        for path in sorted(root.rglob("*"))
        if path.name.endswith(GENERATED_SUFFIXES) and path.relative_to(root) not in files
    ]
    return stale + orphans


def write(files: dict[Path, bytes], root: Path = PROTOS_DIR) -> list[Path]:
    """Write the files that changed and delete orphaned outputs; return what was touched."""
    touched = stale_files(files, root)
    for relative in touched:
        target = root / relative
        if relative in files:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(files[relative])
        else:
            target.unlink()
    return touched


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    check_only = args == ["--check"]
    if args and not check_only:
        print("usage: python -m protos.generate [--check]", file=sys.stderr)
        return 2
    files = render()
    if check_only:
        stale = stale_files(files)
        for relative in stale:
            print(f"stale: {PACKAGE}/{relative}")
        return 1 if stale else 0
    for relative in write(files):
        print(f"wrote: {PACKAGE}/{relative}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
