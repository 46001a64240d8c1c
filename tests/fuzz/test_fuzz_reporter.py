"""``grid-supervisor report`` under hostile input: the environment SLURM hands a hook (job name,
id, comment, times, exit code: what a customer controls), the ``GRID_REPORT_*`` settings and the
flags (what a clumsy operator writes), and spool folders full of generated files (poison, files
planted by another user, links, FIFOs, hard links), against a real gRPC server on an ephemeral
port that records every report with the secret it carried.

Whatever the input: no traceback, an exit code the reporter documents (hook 0 or 1; flush 0, 1
or 2), nothing lost (every well-formed report is delivered or still spooled, or the hook exits 1
and logs it whole), nothing planted delivered (let alone with the secret), and no log line that
does not start with the reporter's timestamp."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from cli import report
from tests.fuzz.budget import fuzz
from tests.reporter_harness import (
    NOBODY,
    SECRET,
    Ran,
    RecordingSupervisor,
    closed_port,
    job,
    reporter,
    spool_names,
    write_spooled,
)

LINE = re.compile(r"[0-9]+ \S.*")
"""Every line the reporter logs: its timestamp, then the line (a newline cannot start another)."""
PLANTED_IDS = range(1_000_000, 2_000_000)
"""SLURM ids of the reports in files the reporter did not write: none may ever arrive."""

# Pieces that made the reporter crash or misread: separators, odd digits, forged log lines,
# addresses that are almost host:port, numbers that are not finite.
PIECES = [
    "\n",
    "\r",
    "\t",
    " ",
    ":",
    "=",
    "|",
    "\x1b[2J",
    "\u202e",
    "\udc80",
    "\u00b2",
    "\u0663",
    "\uff11",
    "9" * 4400,
    "1e400",
    "inf",
    "-inf",
    "nan",
    "-1",
    "0",
    "+3",
    "1_000",
    "0x10",
    "99999",
    "65536",
    "supervisor ",
    "supervisor",
    "127.0.0.1",
    "[::1]",
    "[::1",
    " outcome=delivered",
    "\n1796000000 report=jobcomp job=1 outcome=delivered",
    "Comment=supervisor evil:1",
    job(7),
    job(7).upper(),
    "0x",
]
env_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00"),
    max_size=8,
)
"""Text an environment can hold (no NUL, nothing that cannot be encoded)."""
hostile = st.lists(
    st.sampled_from([p for p in PIECES if p != "\udc80"]) | env_text, max_size=6
).map("".join)
numbers = st.sampled_from(
    ["0", "1", "2.5", "0.001", "10", "120", "121", "1e9", "inf", "nan", "-1", "abc", "", " 3 "]
)


@pytest.fixture(scope="module")
def server() -> Iterator[RecordingSupervisor]:
    with RecordingSupervisor() as recording:
        yield recording


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz-reporter")
    (folder / "reporter.secret").write_bytes(SECRET)
    (folder / "reporter.secret").chmod(0o600)
    return folder


def fresh(workspace: Path) -> Path:
    return Path(tempfile.mkdtemp(dir=workspace))


def no_crash(ran: Ran, codes: tuple[int, ...], *, usage: bool = False) -> None:
    """No traceback, a documented exit code, and (unless argparse may print its usage) only
    the reporter's own log lines."""
    assert ran.raised == "", ran.raised
    assert "Traceback" not in ran.log, ran.log
    assert ran.code in codes, (ran.code, ran.log)
    for line in ran.log.splitlines():
        assert usage or LINE.fullmatch(line), line


def genuine_job(name: str, slurm_id: str) -> bool:
    """The grid's job, as the plugins see it (written apart from the reporter's own checks)."""
    return (
        re.fullmatch(r"0x[0-9a-fA-F]{64}", name) is not None
        and re.fullmatch(r"[0-9]{1,10}", slurm_id) is not None
        and 1 <= int(slurm_id) <= 0xFFFF_FFFD
    )


# --- a hook run: what SLURM and a customer hand it --------------------------------------------


@st.composite
def hook_runs(draw: st.DrawFn, endpoint: str, closed: str) -> dict[str, Any]:
    mode = draw(st.sampled_from(["jobcomp", "prolog"]))
    spoiled = draw(st.sampled_from([None, None, "name", "id", "comment"]))
    """Which field a customer (or SLURM) made odd; the others are a grid job's."""
    slurm_id = draw(hostile if spoiled == "id" else st.integers(1, 10_000).map(str))
    names = [job(7), "0x" + job(7)[2:].upper()]
    name = draw((hostile | st.just(job(7) + "\n")) if spoiled == "name" else st.sampled_from(names))
    listed = draw(st.sampled_from(["both", "both", "server", "none", "typo"]))
    forms = ["supervisor {}", "supervisor {} ", " supervisor {}", "supervisor {}\n", "supervisor{}"]
    if listed == "none":  # nothing stops an address: only ever ours (no stray connection)
        address = draw(st.sampled_from([endpoint, closed, "127.0.0.1:99999", f"{endpoint}:1"]))
        comment = draw(st.sampled_from(forms)).format(address)
    elif spoiled == "comment":  # anything not listed is refused before any connection
        address = draw(st.sampled_from([endpoint, closed]) | hostile)
        comment = draw(
            st.sampled_from(forms).map(lambda form: form.format(address))
            | hostile.map(lambda text: f"supervisor {address}{text}")
            | hostile
        )
    else:
        address = draw(st.sampled_from([endpoint, closed]))
        comment = f"supervisor {address}"
    supervisors = {
        "both": f"{endpoint},{closed}",
        "server": endpoint,
        "none": "",
        "typo": "127.0.0.1",
    }
    env = {
        "PATH": "/usr/bin:/bin",
        "COMMENT": comment,
        "GRID_REPORT_TLS": draw(st.sampled_from(["0", "0", "no", "off"])),
        "GRID_REPORT_TIMEOUT": draw(numbers | hostile),
        "GRID_REPORT_MAX_AGE_DAYS": draw(numbers | hostile),
        "GRID_REPORT_SUPERVISORS": supervisors[listed],
        "GRID_REPORT_SQUEUE": "/nonexistent/squeue",
    }
    if mode == "jobcomp":
        env.update(
            JOBID=slurm_id,
            JOBNAME=name,
            JOBSTATE=draw(
                st.sampled_from(["COMPLETED", "FAILED", "TIMEOUT", "CANCELLED by 0"]) | hostile
            ),
            EXITCODE=draw(st.sampled_from(["0:0", "3:0", "0:9"]) | hostile),
            START=draw(st.sampled_from(["1795536896", "0"]) | hostile),
            END=draw(st.sampled_from(["1795537016", "1795536896"]) | hostile),
        )
    else:
        env.update(SLURM_JOB_ID=slurm_id, SLURM_JOB_NAME=name)
    missing = draw(st.sampled_from([None, None, None, "COMMENT", "GRID_REPORT_TIMEOUT", "START"]))
    env.pop(missing or "", None)  # without COMMENT, squeue (here: none) is asked
    return {
        "mode": mode,
        "env": env,
        "secret": draw(st.booleans()),
        "spool": draw(st.sampled_from(["missing", "trusted", "shared", "file"])),
        "listed": listed,
        "address": address,
    }


@fuzz(1.0)
@given(data=st.data())
def test_a_hook_never_crashes_nor_loses_its_report(
    server: RecordingSupervisor, workspace: Path, data: st.DataObject
) -> None:
    closed = f"127.0.0.1:{closed_port()}"
    run = data.draw(hook_runs(server.endpoint, closed))
    env: dict[str, str] = run["env"]
    folder = fresh(workspace)
    spool = folder / "spool"
    if run["spool"] == "trusted":
        spool.mkdir(mode=0o700)
    elif run["spool"] == "shared":
        spool.mkdir()
        spool.chmod(0o777)
    elif run["spool"] == "file":
        spool.write_text("not a folder")
    env["GRID_REPORT_SPOOL_DIR"] = str(spool)
    if run["secret"]:
        env["GRID_REPORT_SECRET_FILE"] = str(workspace / "reporter.secret")
    server.clear()

    ran = reporter([run["mode"]], env)

    no_crash(ran, (0, 1))
    id_key, name_key = (
        ("JOBID", "JOBNAME") if run["mode"] == "jobcomp" else ("SLURM_JOB_ID", "SLURM_JOB_NAME")
    )
    ours = (
        genuine_job(env.get(name_key, ""), env.get(id_key, ""))
        and env.get("COMMENT", "").startswith("supervisor")
        and env["COMMENT"][11:].strip() in (server.endpoint, closed)
    )
    got = server.received
    if not ours:
        event("not the grid's job")
        assert got == [], (env, got)
        return
    slurm_id = int(env[id_key])
    address = env["COMMENT"][11:].strip()
    listed = env["GRID_REPORT_SUPERVISORS"].split(",") if env["GRID_REPORT_SUPERVISORS"] else []
    assert all(r.slurm_job_id == slurm_id and r.name == env[name_key].lower() for r in got), got
    assert all(r.secret == (SECRET if run["secret"] and listed else None) for r in got), got
    if listed and address not in listed:
        event("refused: not a listed supervisor")
        assert got == [] and "outcome=rejected" in ran.log, ran.log
        return
    delivered = bool(got)
    spooled = (
        any(f"-{slurm_id}-" in name for name in spool_names(spool)) if spool.is_dir() else False
    )
    lost = ran.code == 1 and "outcome=lost" in ran.log
    event("delivered" if delivered else "spooled" if spooled else "lost (said, exit 1)")
    assert delivered or spooled or lost, (run, ran.log)
    if address == closed:
        assert not delivered
    if run["spool"] in ("trusted", "missing") and not delivered:
        assert spooled, ran.log  # a spool it may use: never lost
    if ran.code == 0:
        assert delivered or spooled, ran.log  # never exit 0 with the report gone


# --- a flush: what is in the spool ------------------------------------------------------------

STATUSES = [report.RUNNING, report.CANCELLED, report.FINISHED, report.FAILED, report.OUT_OF_CREDITS]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def good_reports(draw: st.DrawFn, endpoint: str, slurm_id: int) -> dict[str, Any]:
    return {
        "endpoint": endpoint,
        "name": draw(st.sampled_from([job(slurm_id), "0x" + job(slurm_id)[2:].upper()])),
        "slurm_job_id": slurm_id,
        "status": draw(st.sampled_from(STATUSES)),
        "duration_seconds": draw(st.integers(0, 2**32 - 1)),
        "exit_code": draw(st.integers(0, 0xFFFF)),
        "hook": draw(st.sampled_from(["", "prolog", "jobcomp"])),
    }


@st.composite
def entries(draw: st.DrawFn, endpoint: str, closed: str, n: int) -> tuple[str, Any]:
    """(kind, content) of one spool entry."""
    kind = draw(
        st.sampled_from(
            ["good", "good", "good", "down", "poison", "bytes", "planted", "link", "hardlink",
             "fifo", "folder", "wide", "large"]
        )
    )  # fmt: skip
    if kind == "good":
        return kind, draw(good_reports(endpoint, n))
    if kind == "down":
        return kind, draw(good_reports(closed, n))
    if kind == "poison":
        content = draw(good_reports(endpoint, n))
        field = draw(st.sampled_from([*content, "extra"]))
        content[field] = draw(
            json_values | st.sampled_from([-1, 0, 2**64, 2**32, "5", True, f"{endpoint}\n"])
        )
        well_formed = not isinstance(report.decode_report(msgspec.json.encode(content)), str)
        return ("maybe" if well_formed else "poison"), content  # a mutation may leave it whole
    if kind == "bytes":
        return kind, draw(
            st.binary(max_size=300) | hostile.map(lambda t: t.encode("utf-8", "surrogateescape"))
        )
    return kind, draw(good_reports(endpoint, PLANTED_IDS.start + n))


def place(spool: Path, outside: Path, name: str, kind: str, content: Any) -> None:
    data = content if isinstance(content, bytes) else msgspec.json.encode(content)
    if kind == "link":
        (spool / name).symlink_to(write_spooled(outside, name, data))
    elif kind == "hardlink":
        os.link(write_spooled(outside, name, data), spool / name)
    elif kind == "fifo":
        os.mkfifo(spool / name, 0o600)
    elif kind == "folder":
        (spool / name).mkdir(mode=0o700)
    else:
        path = write_spooled(spool, name, data + (b" " * 5000 if kind == "large" else b""))
        if kind == "planted":
            os.chown(path, NOBODY, NOBODY)
        elif kind == "wide":
            path.chmod(0o666)


@fuzz(1.0)
@given(data=st.data())
def test_a_flush_delivers_every_good_report_and_nothing_planted(
    server: RecordingSupervisor, workspace: Path, data: st.DataObject
) -> None:
    closed = f"127.0.0.1:{closed_port()}"
    count = data.draw(st.integers(0, 8))
    spooled = [data.draw(entries(server.endpoint, closed, n + 1)) for n in range(count)]
    folder_state = data.draw(
        st.sampled_from(["trusted"] * 9 + ["shared", "foreign", "link", "missing"])
    )
    settings = {
        "GRID_REPORT_TIMEOUT": data.draw(numbers | st.just("3")),
        "GRID_REPORT_MAX_AGE_DAYS": data.draw(numbers | st.just("7")),
        "GRID_REPORT_TLS": data.draw(st.sampled_from(["0"] * 7 + ["1"])),
    }
    if settings["GRID_REPORT_TLS"] == "1":
        settings["GRID_REPORT_CA_FILE"] = data.draw(
            st.sampled_from(["missing.pem", "reporter.secret"])
        )
    folder = fresh(workspace)
    spool, outside = folder / "spool", folder / "outside"
    real = spool if folder_state != "link" else folder / "real"
    names = [f"{n + 1:020d}-{n + 1}-x.json" for n in range(count)]
    if folder_state != "missing":
        real.mkdir(mode=0o700)
        for name, (kind, content) in zip(names, spooled, strict=True):
            place(real, outside, name, kind, content)
    if folder_state == "link":
        spool.symlink_to(real)
    elif folder_state == "shared":
        spool.chmod(0o777)
    elif folder_state == "foreign":
        os.chown(spool, NOBODY, NOBODY)
    env = {
        "PATH": "/usr/bin:/bin",
        "GRID_REPORT_SPOOL_DIR": str(spool),
        "GRID_REPORT_SECRET_FILE": str(workspace / "reporter.secret"),
        "GRID_REPORT_SUPERVISORS": f"{server.endpoint},{closed}",
        **{
            k: (str(workspace / v) if k == "GRID_REPORT_CA_FILE" else v)
            for k, v in settings.items()
        },
    }
    before = sorted(os.listdir(real)) if real.is_dir() else []
    server.clear()

    ran = reporter(["--flush"], env)

    no_crash(ran, (0, 1, 2))
    got = server.received
    assert all(r.slurm_job_id not in PLANTED_IDS for r in got), got
    assert all(r.secret == SECRET for r in got), got
    if folder_state in ("shared", "foreign", "link") or settings["GRID_REPORT_TLS"] == "1":
        assert ran.code == 2 or (folder_state == "missing"), ran.log
    if folder_state == "missing":
        assert (ran.code, got) == (0, []), ran.log  # nothing was ever spooled there
        return
    if ran.code == 2:
        event("spool or CA refused")
        assert got == [] and sorted(os.listdir(real)) == before, ran.log  # nothing touched
        return
    delivered = {r.slurm_job_id for r in got}
    event(f"flush exit {ran.code}")
    left = set(spool_names(real)) if real.is_dir() else set()
    for name, (kind, content) in zip(names, spooled, strict=True):
        if kind in ("good", "down"):
            slurm_id = content["slurm_job_id"]
            assert slurm_id in delivered or name in left, (kind, name, ran.log)  # not lost
            if kind == "down":
                assert name in left
        elif kind != "maybe":  # everything else is set aside, never delivered
            assert name not in left, (kind, name, ran.log)
            assert (real / "rejected" / f"{name}.reason").is_file(), (kind, name)
    assert (ran.code == 0) == (not left), (ran.code, left, ran.log)


# --- the command line: what an operator types -------------------------------------------------

FLAGS = ["--timeout", "--max-age-days", "--spool-dir", "--ca-file", "--secret-file", "--supervisor",
         "--squeue"]  # fmt: skip


@fuzz(0.6)
@given(
    mode=st.sampled_from(
        [[], ["jobcomp"], ["prolog"], ["--flush"], ["jobcomp", "--flush"], ["bogus"]]
    ),
    flags=st.lists(
        st.tuples(st.sampled_from([*FLAGS, "--plaintext", "--nope"]), numbers | hostile), max_size=4
    ),
)
def test_any_command_line_answers_with_a_documented_exit_code(
    server: RecordingSupervisor, workspace: Path, mode: list[str], flags: list[tuple[str, str]]
) -> None:
    folder = fresh(workspace)
    argv = list(mode)
    for flag, value in flags:
        if flag in ("--plaintext", "--nope"):
            argv.append(flag)
        elif flag in ("--spool-dir", "--ca-file", "--secret-file", "--squeue"):
            argv += [flag, str(folder / value.replace("/", "_").replace("\x00", "_"))[:200]]
        else:
            argv += [flag, value]
    env = {
        "PATH": "/usr/bin:/bin",
        "GRID_REPORT_SPOOL_DIR": str(folder / "spool"),
        "GRID_REPORT_TLS": "0",
        "JOBID": "77",
        "JOBNAME": job(77),
        "SLURM_JOB_ID": "77",
        "SLURM_JOB_NAME": job(77),
        "COMMENT": f"supervisor {server.endpoint}",
        "GRID_REPORT_SUPERVISORS": server.endpoint,
    }
    server.clear()
    ran = reporter(argv, env)
    no_crash(ran, (0, 1, 2), usage=True)
    assert all(r.slurm_job_id == 77 for r in server.received)
