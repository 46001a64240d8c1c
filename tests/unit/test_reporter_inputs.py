"""The reporter's defences that need no server: which addresses, ids and spooled contents it
accepts, the settings it replaces by their defaults, the spool folders and entries it trusts,
and the hook log a job name cannot forge lines in."""

from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cli import report
from cli.report_mapping import (
    FINISHED,
    RUNNING,
    Report,
    parse_endpoint,
    parse_slurm_id,
    report_problem,
)
from cli.report_spool import EntryRefused, Spool, SpoolRefused

REPO = Path(__file__).resolve().parents[2]
JOB = "0x" + "cd" * 32
NOBODY = 65534


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("127.0.0.1:3000", ("127.0.0.1", 3000)),
        ("supervisor.example.com:443", ("supervisor.example.com", 443)),
        ("Sup-1.Example:1", ("Sup-1.Example", 1)),
        ("[::1]:3000", ("::1", 3000)),
        ("[2001:db8::7]:65535", ("2001:db8::7", 65535)),
    ],
)
def test_addresses_the_reporter_talks_to(text: str, parsed: tuple[str, int]) -> None:
    assert parse_endpoint(text) == parsed


@pytest.mark.parametrize(
    "text",
    [
        "",
        "127.0.0.1",
        "127.0.0.1:",
        ":3000",
        "h:0",
        "h:65536",
        "h:99999",
        "h:0x10",
        "h:+1",
        "h:1 ",
        " h:1",
        "h:1\n",
        "h:1:2",
        "h h:1",
        "-h:1",
        "h-:1",
        "h..x:1",
        "[::1:1",
        "[::g]:1",
        "[]:1",
        "::1:1",
        "h/x:1",
        "h\x00:1",
        "\u0445:1",  # Cyrillic: not ASCII
        "h:\u0661",
        "a" * 64 + ":1",
        ".".join(["a" * 60] * 5) + ":1",
    ],
)
def test_addresses_it_does_not(text: str) -> None:
    assert parse_endpoint(text) is None


@pytest.mark.parametrize(
    ("text", "value"),
    [("1", 1), ("4242", 4242), ("4294967293", 4294967293), ("0004", 4)],
)
def test_slurm_ids(text: str, value: int) -> None:
    assert parse_slurm_id(text) == value


@pytest.mark.parametrize(
    "text", ["", "0", "-1", "+1", " 1", "1\n", "4\u00b2", "\u0661", "4294967294", "9" * 5000]
)
def test_not_slurm_ids(text: str) -> None:
    assert parse_slurm_id(text) is None


def test_report_problems_name_the_field() -> None:
    good = Report("h:1", JOB, 1, FINISHED, 60, 768, "jobcomp")
    assert report_problem(good) is None
    cases = {
        "supervisor address": Report("h:99999", JOB, 1, FINISHED),
        "job name": Report("h:1", JOB + "\n", 1, FINISHED),
        "slurm_job_id": Report("h:1", JOB, -1, FINISHED),
        "status": Report("h:1", JOB, 1, 10),
        "duration_seconds": Report("h:1", JOB, 1, FINISHED, 2**40),
        "exit_code": Report("h:1", JOB, 1, FINISHED, 0, -1),
        "hook": Report("h:1", JOB, 1, FINISHED, hook="epilog"),
    }
    for field, bad in cases.items():
        problem = report_problem(bad)
        assert (problem is not None and problem.startswith(field)) or field in str(problem), field


def test_report_problems_quote_long_values_short() -> None:
    problem = report_problem(Report("h" * 5000 + ":1", JOB, 1, FINISHED))
    assert problem is not None and len(problem) < 200


@given(st.binary(max_size=600))
@settings(max_examples=300, deadline=None)
def test_decoding_any_bytes_gives_a_report_or_a_reason(content: bytes) -> None:
    decoded = report.decode_report(content)
    assert isinstance(decoded, str) or report_problem(decoded) is None


def test_decoded_reports_round_trip() -> None:
    good = Report("h:1", JOB, 7, RUNNING, hook="prolog")
    assert report.decode_report(report._ENCODER.encode(good)) == good


def test_a_comment_newline_cannot_start_a_log_line() -> None:
    assert report._printable("a\nb\r\x1b[2J\u202e\udc80") == "a\\nb\\r\\x1b[2J\\u202e\\udc80"
    assert report._printable("plain text: ok") == "plain text: ok"


# --- settings ----------------------------------------------------------------------------------


def options(env: dict[str, str], *flags: str) -> report.ReporterOptions:
    parser = argparse.ArgumentParser()
    report.register(parser.add_subparsers())
    return report.options_from(parser.parse_args(["report", "jobcomp", *flags]), env)


@pytest.mark.parametrize(
    "value", ["inf", "-inf", "nan", "-1", "0", "121", "1e9", "abc", "9" * 5000, "\u0661"]
)
def test_bad_timeouts_are_replaced_by_the_default(value: str) -> None:
    got = options({"GRID_REPORT_TIMEOUT": value})
    assert got.timeout == report.DEFAULT_TIMEOUT
    (problem,) = got.problems
    assert problem.startswith("GRID_REPORT_TIMEOUT=") and "using 10" in problem


def test_a_bad_timeout_flag_is_named_too() -> None:
    got = options({}, "--timeout", "inf")
    assert got.timeout == report.DEFAULT_TIMEOUT
    assert got.problems[0].startswith("--timeout=")


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "4000"])
def test_bad_maximum_ages_are_replaced_by_the_default(value: str) -> None:
    got = options({"GRID_REPORT_MAX_AGE_DAYS": value})
    assert got.max_age_days == report.DEFAULT_MAX_AGE_DAYS
    assert got.problems[0].startswith("GRID_REPORT_MAX_AGE_DAYS=")


def test_good_settings_raise_no_problem() -> None:
    got = options({"GRID_REPORT_TIMEOUT": " 2.5 ", "GRID_REPORT_MAX_AGE_DAYS": "1"})
    assert (got.timeout, got.max_age_days, got.problems) == (2.5, 1.0, ())


def test_an_unknown_tls_value_keeps_tls_on() -> None:
    got = options({"GRID_REPORT_TLS": "maybe"})
    assert got.tls and "GRID_REPORT_TLS" in got.problems[0]


def test_a_bad_supervisor_entry_is_kept_matching_nothing() -> None:
    got = options({"GRID_REPORT_SUPERVISORS": "127.0.0.1, h:1"})
    assert got.supervisors == ("127.0.0.1", "h:1")
    assert not report.endpoint_allowed("127.0.0.1:3000", got.supervisors)
    (problem,) = got.problems
    assert "'127.0.0.1'" in problem and "is not host:port" in problem


def test_the_comment_command_is_squeue() -> None:
    assert options({}).squeue == "squeue"
    assert options({"GRID_REPORT_SQUEUE": "/opt/slurm/bin/squeue"}).squeue == (
        "/opt/slurm/bin/squeue"
    )
    assert options({}, "--squeue", "/x/squeue").squeue == "/x/squeue"
    (problem,) = options({"GRID_REPORT_SCONTROL": "/opt/slurm/bin/scontrol"}).problems
    assert "GRID_REPORT_SCONTROL is no longer read" in problem and "GRID_REPORT_SQUEUE" in problem


# --- the spool folder and its entries ----------------------------------------------------------


def test_a_missing_spool_is_made_private(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "b" / "spool"
    assert Spool.open(folder) is None
    assert not folder.exists()
    old = os.umask(0)
    try:
        Spool.make(folder).close()
    finally:
        os.umask(old)
    assert (folder.stat().st_mode & 0o777, folder.parent.stat().st_mode & 0o777) == (0o700, 0o755)
    assert Spool.open(folder) is not None


@pytest.mark.parametrize(
    ("setup", "says"),
    [
        (lambda p: p.chmod(0o777), "is writable by group or others (mode 0777): chmod go-w"),
        (lambda p: p.chmod(0o720), "is writable by group or others (mode 0720)"),
        (lambda p: os.chown(p, NOBODY, -1), f"is owned by uid {NOBODY}"),
    ],
)
def test_untrusted_spools_are_refused_with_the_fix(
    tmp_path: Path, setup: object, says: str
) -> None:
    folder = tmp_path / "spool"
    folder.mkdir(mode=0o700)
    setup(folder)  # type: ignore[operator]
    with pytest.raises(SpoolRefused) as refused:
        Spool.open(folder)
    assert str(folder) in str(refused.value)
    assert says in str(refused.value) or f"(uid {NOBODY})" in str(refused.value)


def test_a_spool_folder_owned_by_another_user_is_named_with_the_fix(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    folder.mkdir(mode=0o700)
    os.chown(folder, NOBODY, -1)
    with pytest.raises(SpoolRefused) as refused:
        Spool.make(folder)
    assert f"chown {os.geteuid()} {folder}" in str(refused.value)


@pytest.mark.parametrize("kind", ["link", "file", "relative", "nul"])
def test_spools_that_are_not_folders_are_refused(tmp_path: Path, kind: str) -> None:
    folder = tmp_path / "spool"
    if kind == "link":
        (tmp_path / "real").mkdir(mode=0o700)
        folder.symlink_to(tmp_path / "real")
        says = "is a symbolic link"
    elif kind == "file":
        folder.write_text("x")
        says = "is not a folder"
    elif kind == "relative":
        folder = Path("spool")
        says = "is not an absolute path"
    else:
        folder = tmp_path / "sp\x00ol"
        says = "is not a valid path"
    for opener in (Spool.open, Spool.make):
        with pytest.raises(SpoolRefused) as refused:
            opener(folder)
        assert says in str(refused.value)


def test_entries_are_read_only_when_the_reporter_wrote_them(tmp_path: Path) -> None:
    with Spool.make(tmp_path / "spool") as spool:
        spool.write("good.json", b"{}")
        assert spool.read("good.json")[0] == b"{}"
        folder = tmp_path / "spool"
        (folder / "other.json").write_bytes(b"{}")
        os.chown(folder / "other.json", NOBODY, -1)
        (folder / "wide.json").write_bytes(b"{}")
        (folder / "wide.json").chmod(0o666)
        (folder / "big.json").write_bytes(b" " * 5000)
        (folder / "link.json").symlink_to(folder / "good.json")
        expected = {
            "other.json": f"owned by uid {NOBODY}",
            "wide.json": "writable by group or others (0666)",
            "big.json": "larger than 4096 bytes",
            "link.json": "a symbolic link",
        }
        for name, why in expected.items():
            with pytest.raises(EntryRefused) as refused:
                spool.read(name)
            assert why in str(refused.value) or f"(uid {NOBODY})" in str(refused.value), name
        with pytest.raises(FileNotFoundError):
            spool.read("gone.json")


def test_set_aside_never_follows_a_link_and_keeps_the_entry(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    with Spool.make(tmp_path / "spool") as spool:
        spool.write("poison.json", b"x")
        (tmp_path / "spool" / "rejected").symlink_to(outside)
        problem = spool.set_aside("poison.json", "rejected", "why")
        assert problem is not None and "is a symbolic link" in problem
        assert spool.names() == ["poison.json"]
    assert list(outside.iterdir()) == []


def test_set_aside_writes_the_reason_beside_the_entry(tmp_path: Path) -> None:
    with Spool.make(tmp_path / "spool") as spool:
        spool.write("poison.json", b"x")
        assert spool.set_aside("poison.json", "rejected", "bad JSON\nsecond line") is None
        assert spool.names() == []
    rejected = tmp_path / "spool" / "rejected"
    assert sorted(p.name for p in rejected.iterdir()) == ["poison.json", "poison.json.reason"]
    assert (rejected / "poison.json.reason").read_text() == "bad JSON\nsecond line\n"
    assert rejected.stat().st_mode & 0o777 == 0o700


def test_stale_temporaries_are_swept_fresh_ones_kept(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    with Spool.make(folder) as spool:
        for name in (".old.json.tmp", ".new.json.tmp"):
            (folder / name).write_bytes(b"half")
        os.utime(folder / ".old.json.tmp", (1, 1))
        spool.sweep_temporaries()
    assert sorted(p.name for p in folder.iterdir()) == [".new.json.tmp"]


def test_spooling_into_an_untrusted_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)
    with pytest.raises(SpoolRefused):
        report.spool(Report("h:1", JOB, 1, RUNNING), folder)
    assert list(folder.iterdir()) == []


# --- the hook log ------------------------------------------------------------------------------


def test_a_job_name_cannot_forge_a_hook_log_line(tmp_path: Path) -> None:
    settings_file = tmp_path / "grid-hooks.env"
    settings_file.write_text(f"GRID_HOOK_LOG_DIR={tmp_path / 'log'}\n")
    name = "0xab\n1796000000 report=jobcomp job=1 outcome=delivered\r\t\x1b[2J"
    subprocess.run(
        [
            "sh",
            "-c",
            '. "$1/slurm/hooks-common.sh"; hook_log "hook=completion name=%s state=%s" "$2" "$3"',
            "sh",
            str(REPO),
            name,
            "COMPLETED",
        ],
        env={"GRID_HOOKS_ENV": str(settings_file)},
        check=True,
    )
    lines = (tmp_path / "log" / "hooks.log").read_text().splitlines()
    (line,) = lines
    assert line.endswith(
        "hook=completion name=0xab?1796000000 report=jobcomp job=1 outcome=delivered???[2J "
        "state=COMPLETED"
    )
