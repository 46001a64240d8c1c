# Recipes for grid-supervisor. Run them through ./dev, which bootstraps the virtual environment
# ($GRID_VENV, default .venv) from requirements.lock first:
#   ./dev test    ./dev demo    ./dev lint    ./dev build    ./dev bench    ./dev fuzz    ./dev lock

set shell := ["bash", "-euo", "pipefail", "-c"]

python := env_var_or_default("GRID_VENV", ".venv") / "bin/python"

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

# the local testbed: up, down, status, env, ... (python -m testbed --help)
testbed *ARGS:
    {{python}} -m testbed {{ARGS}}

# the benchmarks under bench/; each prints its figures
bench *ARGS:
    {{python}} -m bench {{ARGS}}

# the fuzz suite's long run: $GRID_FUZZ_EXAMPLES inputs per test (default 2000), see docs/fuzzing.md
fuzz *ARGS:
    GRID_FUZZ_EXAMPLES=${GRID_FUZZ_EXAMPLES:-2000} {{python}} -m pytest tests/fuzz -q -p no:cacheprovider --hypothesis-show-statistics {{ARGS}}

# a PyInstaller one-file binary at dist/grid-supervisor (about 45 MB, 40-60 s on 2 cores)
build:
    {{python}} -m PyInstaller --noconfirm --clean --log-level WARN deploy/grid-supervisor.spec
    dist/grid-supervisor --version

# format the code in place
fmt:
    {{python}} -m ruff format .
    {{python}} -m ruff check --fix .

# refresh requirements.lock: every direct and transitive dependency of pyproject.toml (all extras)
# and requirements.in, newest within their ranges, pinned with the hashes of every file
lock *ARGS:
    {{python}} -m uv pip compile pyproject.toml requirements.in --all-extras --universal --generate-hashes --python-version 3.11 --quiet -o requirements.lock {{ARGS}}
