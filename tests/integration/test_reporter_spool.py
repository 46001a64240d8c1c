"""The reporter against a real gRPC server (in-process, ephemeral port; no testbed): a spool it
must not trust, poison files in the spool, settings that must not lose a report, and what a
customer controls (job name, comment, the hook's environment)."""

from __future__ import annotations

import os
import stat
import textwrap
from pathlib import Path

import pytest
from grpclib.const import Status

from cli import report
from tests.reporter_harness import (
    NOBODY,
    SECRET,
    Ran,
    Received,
    RecordingSupervisor,
    closed_port,
    hook_env,
    job,
    reporter,
    spool_names,
    spooled_report,
    write_spooled,
)


@pytest.fixture
def supervisor() -> RecordingSupervisor:
    with RecordingSupervisor() as server:
        yield server  # type: ignore[misc]


def flush_env(
    spool: Path, secret_file: Path | None, *supervisors: str, **extra: str
) -> dict[str, str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "GRID_REPORT_SPOOL_DIR": str(spool),
        "GRID_REPORT_TLS": "0",
        "GRID_REPORT_TIMEOUT": "3",
        "GRID_REPORT_SUPERVISORS": ",".join(supervisors),
    }
    if secret_file is not None:
        env["GRID_REPORT_SECRET_FILE"] = str(secret_file)
    env.update(extra)
    return env


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "reporter.secret"
    path.write_bytes(SECRET + b"\n")
    path.chmod(0o600)
    return path


def received(server: RecordingSupervisor) -> list[tuple[int, bytes | None]]:
    return [(r.slurm_job_id, r.secret) for r in server.received]


FIRST = "00000000000000000001-1-finished.json"


def spool_one(folder: Path, server: RecordingSupervisor) -> Path:
    """Spool, as the reporter does, a well-formed report for SLURM job 1 to ``server``."""
    return write_spooled(folder, FIRST, spooled_report(server.endpoint, 1))


def refused_whole(ran: Ran, server: RecordingSupervisor, *says: str) -> None:
    """The flush refused the spool (exit 2, no traceback), said so, and sent nothing."""
    assert (ran.code, ran.raised) == (2, ""), ran.log
    for words in says:
        assert words in ran.log
    assert server.received == []


# --- a spool the reporter must not trust -----------------------------------------------------


def test_planted_file_in_a_shared_spool_is_never_delivered_with_the_secret(
    tmp_path: Path, supervisor: RecordingSupervisor, secret_file: Path
) -> None:
    """The issue's attack: another user writes a report into a spool everybody may write to;
    root's flush must not send it (with the secret) nor anything else from that folder."""
    spool = tmp_path / "spool"
    spool_one(spool, supervisor)
    spool.chmod(0o1777)
    planted = write_spooled(
        spool, "00000000000000000002-2-finished.json", spooled_report(supervisor.endpoint, 2)
    )
    os.chown(planted, NOBODY, NOBODY)
    ran = reporter(["--flush"], flush_env(spool, secret_file, supervisor.endpoint))
    refused_whole(ran, supervisor, f"{spool} is writable by group or others", f"chmod go-w {spool}")
    assert spool_names(spool) == [FIRST, planted.name]


def test_a_file_of_another_user_in_a_trusted_spool_is_set_aside(
    tmp_path: Path, supervisor: RecordingSupervisor, secret_file: Path
) -> None:
    spool = tmp_path / "spool"
    spool_one(spool, supervisor)
    planted = write_spooled(
        spool, "00000000000000000002-2-finished.json", spooled_report(supervisor.endpoint, 2)
    )
    os.chown(planted, NOBODY, NOBODY)
    ran = reporter(["--flush"], flush_env(spool, secret_file, supervisor.endpoint))
    assert (ran.code, ran.raised) == (0, ""), ran.log
    assert received(supervisor) == [(1, SECRET)]
    assert spool_names(spool) == []
    assert spool_names(spool / "rejected") == [planted.name]
    reason = (spool / "rejected" / f"{planted.name}.reason").read_text()
    assert f"uid {NOBODY}" in reason and "not by the reporter's user" in reason


@pytest.mark.parametrize("mode", [0o700, 0o770, 0o707])
def test_spool_owned_by_another_user_is_refused(
    tmp_path: Path, supervisor: RecordingSupervisor, secret_file: Path, mode: int
) -> None:
    spool = tmp_path / "spool"
    spool_one(spool, supervisor)
    os.chown(spool, NOBODY, NOBODY)
    spool.chmod(mode)
    ran = reporter(["--flush"], flush_env(spool, secret_file, supervisor.endpoint))
    refused_whole(ran, supervisor, f"(uid {NOBODY})", f"chown {os.geteuid()} {spool}")
    assert spool_names(spool) == [FIRST]


def test_spool_that_is_a_symbolic_link_is_refused(
    tmp_path: Path, supervisor: RecordingSupervisor, secret_file: Path
) -> None:
    real = tmp_path / "elsewhere"
    spool_one(real, supervisor)
    spool = tmp_path / "spool"
    spool.symlink_to(real)
    ran = reporter(["--flush"], flush_env(spool, secret_file, supervisor.endpoint))
    refused_whole(ran, supervisor, f"{spool} is a symbolic link")
    assert spool_names(real) == [FIRST]


def test_spool_under_a_folder_others_may_write_is_refused(
    tmp_path: Path, supervisor: RecordingSupervisor, secret_file: Path
) -> None:
    shared = tmp_path / "shared"
    spool = shared / "spool"
    spool_one(spool, supervisor)
    shared.chmod(0o777)  # anyone could rename spool/ away and put their own in its place
    ran = reporter(["--flush"], flush_env(spool, secret_file, supervisor.endpoint))
    refused_whole(ran, supervisor, f"{shared}, a parent of the spool folder {spool}, is writable")
    shared.chmod(0o1777)  # sticky, as /tmp: nobody can rename another's folder
    ran = reporter(["--flush"], flush_env(spool, secret_file, supervisor.endpoint))
    assert (ran.code, ran.raised) == (0, ""), ran.log
    assert received(supervisor) == [(1, SECRET)]


def test_spooled_links_fifos_and_hard_links_are_never_followed(
    tmp_path: Path, supervisor: RecordingSupervisor, secret_file: Path
) -> None:
    outside = tmp_path / "outside"
    target = write_spooled(outside, "target.json", spooled_report(supervisor.endpoint, 9))
    spool = tmp_path / "spool"
    spool_one(spool, supervisor)
    (spool / "00000000000000000002-9-finished.json").symlink_to(target)
    os.mkfifo(spool / "00000000000000000003-9-finished.json", 0o600)
    os.link(target, spool / "00000000000000000004-9-finished.json")
    (spool / "00000000000000000005-9-finished.json").mkdir(mode=0o700)
    ran = reporter(["--flush"], flush_env(spool, secret_file, supervisor.endpoint))
    assert (ran.code, ran.raised) == (0, ""), ran.log
    assert received(supervisor) == [(1, SECRET)]
    assert spool_names(spool) == []
    rejected = spool / "rejected"
    reasons = {
        name: (rejected / f"{name}.reason").read_text().strip() for name in spool_names(rejected)
    }
    assert reasons == {
        "00000000000000000002-9-finished.json": "a symbolic link",
        "00000000000000000003-9-finished.json": "not a regular file",
        "00000000000000000004-9-finished.json": "has 2 hard links",
        "00000000000000000005-9-finished.json": "not a regular file",
    }
    assert target.read_bytes() and stat.S_ISREG(target.lstat().st_mode)


def test_a_rejected_folder_that_is_a_link_is_not_followed(
    tmp_path: Path, supervisor: RecordingSupervisor, secret_file: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o700)
    spool = tmp_path / "spool"
    write_spooled(spool, FIRST, b"{not json")
    write_spooled(
        spool, "00000000000000000002-2-finished.json", spooled_report(supervisor.endpoint, 2)
    )
    (spool / "rejected").symlink_to(outside)
    ran = reporter(["--flush"], flush_env(spool, secret_file, supervisor.endpoint))
    assert ran.raised == ""
    assert received(supervisor) == [(2, SECRET)]  # the poison file stops nothing
    assert list(outside.iterdir()) == []
    assert spool_names(spool) == [FIRST]  # kept, said why
    assert f"{spool / 'rejected'} is a symbolic link" in ran.log
    assert ran.code == 1


def test_hook_with_an_untrusted_spool_still_delivers_its_report(
    tmp_path: Path, supervisor: RecordingSupervisor
) -> None:
    spool = tmp_path / "spool"
    spool_one(spool, supervisor)
    spool.chmod(0o777)
    ran = reporter(["jobcomp"], hook_env("jobcomp", supervisor.endpoint, spool))
    assert (ran.code, ran.raised) == (0, ""), ran.log
    assert received(supervisor) == [(4242, None)]
    assert "spool not used" in ran.log and "writable by group or others" in ran.log
    assert spool_names(spool) == [FIRST]


def test_hook_says_so_when_its_report_can_be_neither_sent_nor_spooled(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir(mode=0o777)
    spool.chmod(0o777)
    ran = reporter(["jobcomp"], hook_env("jobcomp", f"127.0.0.1:{closed_port()}", spool))
    assert (ran.code, ran.raised) == (1, ""), ran.log
    (line,) = [line for line in ran.log.splitlines() if "outcome=lost" in line]
    assert "job=4242" in line and "status=FAILED" in line and "duration=120" in line
    assert "exit_code=768" in line and "writable by group or others" in line
    assert spool_names(spool) == []


# --- poison in the spool ---------------------------------------------------------------------


POISON = {
    "negative-id": spooled_report("127.0.0.1:1", 5, slurm_job_id=-1),
    "zero-id": spooled_report("127.0.0.1:1", 5, slurm_job_id=0),
    "huge-id": spooled_report("127.0.0.1:1", 5, slurm_job_id=2**64),
    "id-as-text": spooled_report("127.0.0.1:1", 5, slurm_job_id="5"),
    "id-as-bool": spooled_report("127.0.0.1:1", 5, slurm_job_id=True),
    "id-as-float": spooled_report("127.0.0.1:1", 5, slurm_job_id=5.0),
    "unknown-status": spooled_report("127.0.0.1:1", 5, status=99),
    "negative-duration": spooled_report("127.0.0.1:1", 5, duration_seconds=-1),
    "huge-duration": spooled_report("127.0.0.1:1", 5, duration_seconds=2**63),
    "huge-exit-code": spooled_report("127.0.0.1:1", 5, exit_code=2**40),
    "bad-name": spooled_report("127.0.0.1:1", 5, name="0x1234"),
    "name-with-newline": spooled_report("127.0.0.1:1", 5, name=job(5) + "\n"),
    "port-out-of-range": spooled_report("127.0.0.1:99999", 5),
    "address-without-port": spooled_report("127.0.0.1", 5),
    "address-with-spaces": spooled_report("127.0.0.1:1 evil", 5),
    "unknown-hook": spooled_report("127.0.0.1:1", 5, hook="x" * 50),
    "missing-field": {"endpoint": "127.0.0.1:1", "name": job(5)},
    "array": [1, 2, 3],
}
POISON_BYTES = {
    "bad-json": b"{not json",
    "empty": b"",
    "not-utf8": b"\xff\xfe\x00",
    "too-large": b'{"endpoint": "' + b"a" * 5000 + b'"}',
}


def test_poison_files_are_set_aside_with_their_reason_and_the_rest_delivered(
    tmp_path: Path, supervisor: RecordingSupervisor, secret_file: Path
) -> None:
    spool = tmp_path / "spool"
    poison = {
        **{name: report._ENCODER.encode(content) for name, content in POISON.items()},
        **POISON_BYTES,
    }
    for n, content in enumerate(poison.values()):
        write_spooled(spool, f"{n + 10:020d}-poison.json", content)
    for n in (1, 2):
        write_spooled(spool, f"{n:020d}-{n}-finished.json", spooled_report(supervisor.endpoint, n))
    write_spooled(spool, f"{99:020d}-3-finished.json", spooled_report(supervisor.endpoint, 3))
    ran = reporter(["--flush"], flush_env(spool, secret_file, supervisor.endpoint))
    assert (ran.code, ran.raised) == (0, ""), ran.log
    assert received(supervisor) == [(1, SECRET), (2, SECRET), (3, SECRET)]
    assert spool_names(spool) == []
    rejected = spool / "rejected"
    assert spool_names(rejected) == [f"{n + 10:020d}-poison.json" for n in range(len(poison))]
    reasons = [
        (rejected / f"{n + 10:020d}-poison.json.reason").read_text() for n in range(len(poison))
    ]
    assert all(reason.strip() for reason in reasons)
    assert "slurm_job_id -1 is out of range" in reasons[0]
    assert sum("outcome=rejected" in line for line in ran.log.splitlines()) == len(poison)
    again = reporter(["--flush"], flush_env(spool, secret_file, supervisor.endpoint))
    assert (again.code, again.raised) == (0, ""), again.log  # nothing is left to fail a flush


@pytest.mark.parametrize(
    ("refusal", "kept"),
    [
        (Status.INVALID_ARGUMENT, False),
        (Status.NOT_FOUND, False),  # a job the supervisor does not have: it never will
        (Status.RESOURCE_EXHAUSTED, True),
        (Status.UNAVAILABLE, True),
        (Status.UNAUTHENTICATED, True),
    ],
)
def test_a_report_the_supervisor_refuses_for_good_is_set_aside_with_its_reason(
    tmp_path: Path, secret_file: Path, refusal: Status, kept: bool
) -> None:
    def answer(request: object) -> tuple[Status, str] | None:
        return (refusal, "no, because") if getattr(request, "id", 0) == 1 else None

    spool = tmp_path / "spool"
    with RecordingSupervisor(answer) as server:
        for n in (1, 2):
            write_spooled(spool, f"{n:020d}-{n}-finished.json", spooled_report(server.endpoint, n))
        ran = reporter(["--flush"], flush_env(spool, secret_file, server.endpoint))
        assert ran.raised == ""
        assert ran.code == (1 if kept else 0), ran.log
        assert received(server) == [(2, SECRET)]
    assert spool_names(spool) == ([f"{1:020d}-1-finished.json"] if kept else [])
    if not kept:
        reason = (spool / "rejected" / f"{1:020d}-1-finished.json.reason").read_text()
        assert f"{refusal.name}: no, because" in reason


# --- settings that must not lose a report ----------------------------------------------------

BAD_NUMBERS = ["inf", "-inf", "nan", "-1", "0", "1e9", "abc", "9" * 5000, "\u0661\u0660"]


@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_a_bad_timeout_is_replaced_by_the_default_and_the_report_delivered(
    tmp_path: Path, supervisor: RecordingSupervisor, value: str
) -> None:
    spool = tmp_path / "spool"
    ran = reporter(
        ["jobcomp"], hook_env("jobcomp", supervisor.endpoint, spool, GRID_REPORT_TIMEOUT=value)
    )
    assert (ran.code, ran.raised) == (0, ""), ran.log
    assert "GRID_REPORT_TIMEOUT=" in ran.log and "using 10" in ran.log
    assert received(supervisor) == [(4242, None)]
    assert spool_names(spool) == []


@pytest.mark.parametrize("value", ["inf", "nan", "-5", "1e400"])
def test_a_bad_timeout_with_the_supervisor_down_spools_the_report(
    tmp_path: Path, value: str
) -> None:
    spool = tmp_path / "spool"
    env = hook_env("prolog", f"127.0.0.1:{closed_port()}", spool, GRID_REPORT_TIMEOUT=value)
    ran = reporter(["prolog"], env)
    assert (ran.code, ran.raised) == (0, ""), ran.log
    assert "outcome=spooled" in ran.log
    assert len(spool_names(spool)) == 1


@pytest.mark.parametrize("value", ["-1", "0", "nan", "abc"])
def test_a_bad_maximum_age_expires_nothing_fresh(
    tmp_path: Path, supervisor: RecordingSupervisor, value: str
) -> None:
    spool = tmp_path / "spool"
    write_spooled(spool, f"{1:020d}-1-finished.json", spooled_report(supervisor.endpoint, 1))
    env = flush_env(spool, None, GRID_REPORT_MAX_AGE_DAYS=value)
    ran = reporter(["--flush"], env)
    assert (ran.code, ran.raised) == (0, ""), ran.log
    assert "GRID_REPORT_MAX_AGE_DAYS=" in ran.log and "using 7" in ran.log
    assert received(supervisor) == [(1, None)]
    assert not (spool / "expired").exists()


def ca_files(tmp_path: Path) -> dict[str, Path]:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text(
        "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n"
    )
    empty = tmp_path / "empty.pem"
    empty.write_bytes(b"")
    folder = tmp_path / "ca-folder"
    folder.mkdir()
    return {
        "missing": tmp_path / "missing.pem",
        "garbage": garbage,
        "empty": empty,
        "folder": folder,
    }


@pytest.mark.parametrize("which", ["missing", "garbage", "empty", "folder"])
def test_flush_with_a_bad_ca_file_says_so_and_keeps_the_reports(
    tmp_path: Path, supervisor: RecordingSupervisor, which: str
) -> None:
    ca = ca_files(tmp_path)[which]
    spool = tmp_path / "spool"
    write_spooled(spool, f"{1:020d}-1-finished.json", spooled_report(supervisor.endpoint, 1))
    env = flush_env(spool, None, GRID_REPORT_TLS="1", GRID_REPORT_CA_FILE=str(ca))
    ran = reporter(["--flush"], env)
    assert (ran.code, ran.raised) == (2, ""), ran.log
    assert f"the CA file {ca}" in ran.log and "GRID_REPORT_CA_FILE" in ran.log
    assert spool_names(spool) == [f"{1:020d}-1-finished.json"]


def test_hook_with_a_bad_ca_file_spools_its_report(tmp_path: Path) -> None:
    ca = ca_files(tmp_path)["garbage"]
    spool = tmp_path / "spool"
    env = hook_env(
        "jobcomp", "127.0.0.1:1", spool, GRID_REPORT_TLS="1", GRID_REPORT_CA_FILE=str(ca)
    )
    ran = reporter(["jobcomp"], env)
    assert (ran.code, ran.raised) == (0, ""), ran.log
    assert f"the CA file {ca}" in ran.log and "outcome=spooled" in ran.log
    assert len(spool_names(spool)) == 1


def test_flush_of_a_spool_that_is_a_file_says_so(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.write_text("not a folder\n")
    ran = reporter(["--flush"], flush_env(spool, None))
    assert (ran.code, ran.raised) == (2, ""), ran.log
    assert f"{spool} is not a folder" in ran.log
    assert spool.read_text() == "not a folder\n"


def test_a_relative_spool_folder_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ran = reporter(["--flush", "--spool-dir", "spool"], flush_env(tmp_path / "unused", None))
    assert (ran.code, ran.raised) == (2, ""), ran.log
    assert "the spool folder spool is not an absolute path" in ran.log


def test_secret_files_that_are_not_plain_files_are_withheld_without_hanging(
    tmp_path: Path, supervisor: RecordingSupervisor
) -> None:
    fifo = tmp_path / "secret.fifo"
    os.mkfifo(fifo, 0o600)
    spool = tmp_path / "spool"
    env = hook_env(
        "jobcomp",
        supervisor.endpoint,
        spool,
        GRID_REPORT_SECRET_FILE=str(fifo),
        GRID_REPORT_SUPERVISORS=supervisor.endpoint,
    )
    ran = reporter(["jobcomp"], env)
    assert (ran.code, ran.raised) == (0, ""), ran.log
    assert f"the secret file {fifo}" in ran.log and "secret withheld" in ran.log
    assert received(supervisor) == [(4242, None)]


def test_a_secret_readable_by_others_is_warned_about(
    tmp_path: Path, supervisor: RecordingSupervisor, secret_file: Path
) -> None:
    secret_file.chmod(0o644)
    env = hook_env(
        "jobcomp",
        supervisor.endpoint,
        tmp_path / "spool",
        GRID_REPORT_SECRET_FILE=str(secret_file),
        GRID_REPORT_SUPERVISORS=supervisor.endpoint,
    )
    ran = reporter(["jobcomp"], env)
    assert (ran.code, ran.raised) == (0, ""), ran.log
    assert f"chmod 600 {secret_file}" in ran.log
    assert SECRET.decode() not in ran.log
    assert received(supervisor) == [(4242, SECRET)]


def test_a_mistyped_supervisor_list_never_opens_up(
    tmp_path: Path, supervisor: RecordingSupervisor, secret_file: Path
) -> None:
    env = hook_env(
        "jobcomp",
        supervisor.endpoint,
        tmp_path / "spool",
        GRID_REPORT_SECRET_FILE=str(secret_file),
        GRID_REPORT_SUPERVISORS="127.0.0.1",  # the port forgotten
    )
    ran = reporter(["jobcomp"], env)
    assert (ran.code, ran.raised) == (0, ""), ran.log
    assert "supervisor '127.0.0.1'" in ran.log and "is not host:port" in ran.log
    assert supervisor.received == []


# --- what a customer controls ----------------------------------------------------------------


def test_a_comment_with_a_newline_forges_no_log_line_and_sends_nothing(
    tmp_path: Path, supervisor: RecordingSupervisor
) -> None:
    forged = f"{supervisor.endpoint}\n1 report=jobcomp job=1 outcome=delivered"
    env = hook_env(
        "jobcomp", supervisor.endpoint, tmp_path / "spool", COMMENT=f"supervisor {forged}"
    )
    ran = reporter(["jobcomp"], env)
    assert (ran.code, ran.raised) == (0, ""), ran.log
    (line,) = ran.log.splitlines()
    assert "outcome=dropped" in line and "is not host:port" in line and "\\n" in line
    assert supervisor.received == []


@pytest.mark.parametrize(
    "address", ["127.0.0.1:99999", "127.0.0.1:0", "127.0.0.1:0x10", "[::1", "[not:v6]:1", "h:1:2"]
)
def test_a_comment_naming_no_valid_address_is_dropped_with_a_reason(
    tmp_path: Path, address: str
) -> None:
    spool = tmp_path / "spool"
    ran = reporter(["prolog"], hook_env("prolog", "x", spool, COMMENT=f"supervisor {address}"))
    assert (ran.code, ran.raised) == (0, ""), ran.log
    assert "outcome=dropped" in ran.log and "is not host:port" in ran.log
    assert spool_names(spool) == []  # it could never be delivered: it is not kept


@pytest.mark.parametrize(
    "slurm_id", ["4\u00b2", "\u0661\u0662", "+12", " 12", "12\n", "0", "4294967295", "9" * 5000]
)
def test_odd_slurm_ids_are_not_the_grid_jobs(
    tmp_path: Path, supervisor: RecordingSupervisor, slurm_id: str
) -> None:
    env = hook_env("jobcomp", supervisor.endpoint, tmp_path / "spool", JOBID=slurm_id)
    ran = reporter(["jobcomp"], env)
    assert (ran.code, ran.raised, ran.log) == (0, "", "")
    assert supervisor.received == []


@pytest.mark.parametrize(
    ("start", "end", "exit_code"),
    [
        ("1", "9" * 4000, "0:0"),
        ("1795536896", "1" + "0" * 30, "0:0"),
        ("¹", "²", "3:0"),
        ("1795536896", "1795537016", "9" * 5000 + ":0"),
        ("1795536896", "1795537016", "-1:-1"),
    ],
)
def test_odd_times_and_exit_codes_still_deliver_the_report(
    tmp_path: Path, supervisor: RecordingSupervisor, start: str, end: str, exit_code: str
) -> None:
    env = hook_env(
        "jobcomp", supervisor.endpoint, tmp_path / "spool", START=start, END=end, EXITCODE=exit_code
    )
    ran = reporter(["jobcomp"], env)
    assert (ran.code, ran.raised) == (0, ""), ran.log
    (got,) = supervisor.received
    assert got.slurm_job_id == 4242 and 0 <= got.duration <= 2**32 and 0 <= got.exit_code < 2**16


def test_the_comment_comes_from_squeue_so_no_other_field_can_shadow_it(
    tmp_path: Path, supervisor: RecordingSupervisor
) -> None:
    """scontrol prints a customer's working folder (``--chdir``) before the comment, raw: a
    folder named ``x Comment=supervisor evil:1`` read as the comment sent the job's reports
    elsewhere. squeue --format=%k prints the comment alone."""
    fakes = tmp_path / "bin"
    fakes.mkdir()
    line = (
        f"JobId=4242 JobName={job(4242)} WorkDir=/tmp/x Comment=supervisor 127.0.0.1:1 "
        f"Comment=supervisor {supervisor.endpoint}  StdErr=/dev/null StdOut=/dev/null Power="
    )
    for name, output in (("scontrol", line), ("squeue", f"supervisor {supervisor.endpoint}")):
        fake = fakes / name
        fake.write_text(f"#!/bin/sh\ncat <<'EOF'\n{output}\nEOF\n")
        fake.chmod(0o755)
    env = hook_env("jobcomp", "unused", tmp_path / "spool")
    del env["COMMENT"]
    env.update(
        GRID_REPORT_SCONTROL=str(fakes / "scontrol"), GRID_REPORT_SQUEUE=str(fakes / "squeue")
    )
    ran = reporter(["jobcomp"], env)
    assert (ran.code, ran.raised) == (0, ""), ran.log
    assert [r.slurm_job_id for r in supervisor.received] == [4242]


def test_squeue_is_asked_for_the_job_s_comment_only(
    tmp_path: Path, supervisor: RecordingSupervisor
) -> None:
    fake = tmp_path / "squeue"
    seen = tmp_path / "argv"
    fake.write_text(
        textwrap.dedent(
            f"""\
            #!/bin/sh
            printf '%s\\n' "$@" > {seen}
            echo 'supervisor {supervisor.endpoint}'
            """
        )
    )
    fake.chmod(0o755)
    env = hook_env("prolog", "unused", tmp_path / "spool", GRID_REPORT_SQUEUE=str(fake))
    del env["COMMENT"]
    ran = reporter(["prolog"], env)
    assert (ran.code, ran.raised) == (0, ""), ran.log
    assert seen.read_text().split() == [
        "--noheader",
        "--states=all",
        "--jobs=4242",
        "--format=%k",
    ]
    assert supervisor.received == [Received(job(4242), 4242, report.RUNNING, 0, 0, None)]
