# Recipes for grid-supervisor. Run them through ./dev, which bootstraps .venv first:
#   ./dev test    ./dev demo    ./dev lint    ./dev build    ./dev bench

set shell := ["bash", "-euo", "pipefail", "-c"]

python := ".venv/bin/python"

# list the recipes
default:
    @just --list

# ruff and mypy over the whole project
lint:
    {{python}} -m ruff check .
    {{python}} -m ruff format --check .
    {{python}} -m mypy

# lint, type-check, then every test (unit, integration, end-to-end on the real testbed)
test *ARGS: lint
    {{python}} -m pytest {{ARGS}}

# only the fast tests that need no service
unit *ARGS:
    {{python}} -m pytest tests/unit {{ARGS}}

# run the supervisor's main job on the local testbed
demo *ARGS:
    {{python}} -m testbed.demo {{ARGS}}

# the benchmarks under bench/; each prints its figures
bench *ARGS:
    {{python}} -m bench {{ARGS}}

# a PyInstaller one-file binary at dist/grid-supervisor (about 45 MB, 40-60 s on 2 cores)
build:
    {{python}} -c 'import PyInstaller' 2>/dev/null || {{python}} -m pip install -q -e '.[build]'
    {{python}} -m PyInstaller --noconfirm --clean --log-level WARN deploy/grid-supervisor.spec
    dist/grid-supervisor --version

# format the code in place
fmt:
    {{python}} -m ruff format .
    {{python}} -m ruff check --fix .
