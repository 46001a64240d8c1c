"""The SLURM adapter's pure half: command builders (quoting above all), refusals and parsers.

Parser inputs are lines captured from the testbed's SLURM 22.05.8 (and, for sacct and GPUs,
written in the documented format)."""

from __future__ import annotations

import datetime as dt
import shlex
import subprocess

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.grid import Hardware, JobDefinition
from actors.slurm import commands as cmd
from actors.slurm.messages import UnexpectedOutput

PATHS = cmd.CommandPaths()
JOB = "0x" + "ab" * 32


def definition(*, ntasks: int = 2, cpus: int = 1, mem: int = 100, gpus: int = 0) -> JobDefinition:
    return JobDefinition(
        gpus=gpus, mem_per_cpu=mem, cpus_per_task=cpus, ntasks=ntasks, batch_location_hash="h"
    )


def spec(**changes: object) -> cmd.SubmitSpec:
    base = cmd.submit_spec(
        JOB, definition(), 7, partition="grid", public_address="10.0.0.1:3000", output_dir="/tmp"
    )
    return msgspec.structs.replace(base, **changes)


# --- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("job", "minutes", "script", "expected"),
    [
        (definition(), 0, "true", "no time to run"),
        (definition(), -5, "true", "no time to run"),
        (definition(), 10**9, "true", "time limit of 1000000000 minutes is absurd"),
        (definition(ntasks=0), 5, "true", "ntasks is 0"),
        (definition(cpus=0), 5, "true", "cpusPerTask is 0"),
        (definition(mem=-1), 5, "true", "memPerCpu is -1"),
        (definition(gpus=-1), 5, "true", "gpus is -1"),
        (definition(ntasks=10**7), 5, "true", "ntasks of 10000000 is absurd"),
        (definition(gpus=10**6), 5, "true", "gpus of 1000000 is absurd"),
        (definition(), 5, "echo a\0b", "NUL byte"),
        (definition(), 5, "x" * (5 * 1024 * 1024), "larger than"),
    ],
)
def test_unusable_jobs_are_refused_with_a_reason(
    job: JobDefinition, minutes: int, script: str, expected: str
) -> None:
    reason = cmd.refusal(job, minutes, script)
    assert reason is not None
    assert expected in reason


def test_a_usable_job_is_not_refused() -> None:
    assert cmd.refusal(definition(mem=0), 1, "") is None
    assert cmd.refusal(definition(ntasks=64, cpus=8, mem=4096, gpus=2), 60 * 24, "true") is None


# --- sbatch --------------------------------------------------------------------------------------


def test_sbatch_carries_name_comment_partition_time_and_resources() -> None:
    argv = cmd.sbatch_argv(PATHS, spec())
    assert argv == [
        "/usr/bin/sbatch",
        "--parsable",
        f"--job-name={JOB}",
        "--comment=supervisor 10.0.0.1:3000",
        "--partition=grid",
        "--time=7",
        "--ntasks=2",
        "--cpus-per-task=1",
        f"--output=/tmp/{JOB}-%j.out",
        "--mem-per-cpu=100",
        "--chdir=/tmp",
    ]
    comment = next(a for a in argv if a.startswith("--comment="))
    assert comment.removeprefix("--comment=")[11:] == "10.0.0.1:3000"  # what the reporters read


def test_gpus_and_memory_only_when_asked_for() -> None:
    without = cmd.sbatch_argv(PATHS, spec(gpus=0, mem_per_cpu_mb=0))
    assert not any(a.startswith(("--gpus", "--mem-per-cpu")) for a in without)
    with_gpus = cmd.sbatch_argv(PATHS, spec(gpus=3))
    assert "--gpus=3" in with_gpus


def test_command_paths_come_from_the_configuration() -> None:
    paths = cmd.CommandPaths(sbatch="/opt/slurm/bin/sbatch", scancel="/opt/x/scancel")
    assert cmd.sbatch_argv(paths, spec())[0] == "/opt/slurm/bin/sbatch"
    assert cmd.scancel_argv(paths, slurm_job_id=4) == ["/opt/x/scancel", "4"]


def test_bad_partition_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="partition"):
        cmd.submit_spec(JOB, definition(), 5, partition="a b", public_address="h:1")


def test_the_batch_script_starts_with_a_command_so_customer_directives_are_dead() -> None:
    body = "#SBATCH --partition=gpu-premium\n#SBATCH -N 100\necho hi"
    script = cmd.batch_script(body)
    lines = script.splitlines()
    assert lines[0].startswith("#!")
    assert lines[1] == "true"  # sbatch stops reading #SBATCH lines at the first command
    assert script.endswith(body + "\n")


@pytest.mark.parametrize(
    ("stdout", "expected"), [("42\n", 42), ("1234;cluster\n", 1234), ("  7  ", 7)]
)
def test_parsable_sbatch_output(stdout: str, expected: int) -> None:
    assert cmd.parse_sbatch(stdout) == expected


@pytest.mark.parametrize("stdout", ["", "Submitted batch job 12", "abc"])
def test_unparsable_sbatch_output_is_our_error(stdout: str) -> None:
    with pytest.raises(UnexpectedOutput):
        cmd.parse_sbatch(stdout)


_REFUSED = (
    "sbatch: error: Batch job submission failed: Requested node configuration is not available"
)
_UNREACHED = "sbatch: error: Batch job submission failed: Unable to contact slurm controller"
_TIMED_OUT = "sbatch: error: Batch job submission failed: Socket timed out on send/recv"


@pytest.mark.parametrize(
    ("status", "stderr", "kind"),
    [
        (1, _REFUSED, "refused"),
        (1, "sbatch: error: Invalid generic resource (gres) specification", "refused"),
        (1, _UNREACHED, "unavailable"),
        (1, _TIMED_OUT, "ambiguous"),
        (127, "bash: line 1: /usr/bin/sbatch: No such file or directory", "broken"),
        (1, "", "broken"),
    ],
)
def test_sbatch_failures_are_sorted_by_what_they_mean(status: int, stderr: str, kind: str) -> None:
    assert cmd.classify_sbatch_failure(status, stderr).value == kind


# --- quoting: hostile values cannot break out ------------------------------------------------

HOSTILE = [
    "0x'; touch /tmp/pwned; echo '",
    "$(touch /tmp/pwned)",
    "`touch /tmp/pwned`",
    'a"b\\"c',
    "x\ny",
    "--job-name=evil",
    "-",
    "",
    " ",
    "$HOME ${IFS} * ? [a] ~ # & | ; < > ( ) { } !",
]


@given(st.lists(st.text(), max_size=6))
def test_command_line_splits_back_into_exactly_the_argv(values: list[str]) -> None:
    argv = ["/usr/bin/scontrol", *values]
    assert shlex.split(cmd.command_line(argv)) == argv


@given(
    name=st.text(min_size=1),
    comment=st.text(),
    output_dir=st.text(),
    workdir=st.none() | st.text(),
)
def test_hostile_submission_fields_stay_single_arguments(
    name: str, comment: str, output_dir: str, workdir: str | None
) -> None:
    hostile = spec(job_name=name, comment=comment, output=output_dir, workdir=workdir)
    argv = cmd.sbatch_argv(PATHS, hostile)
    assert shlex.split(cmd.command_line(argv)) == argv
    assert f"--job-name={name}" in argv
    assert f"--comment={comment}" in argv


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text().filter(lambda s: "\0" not in s), min_size=1, max_size=4))
def test_a_real_bash_receives_exactly_the_intended_arguments(values: list[str]) -> None:
    """The remote side runs the command line through the login shell (bash): printf prints
    each argument as bash received it, NUL-terminated."""
    line = cmd.command_line(["printf", "%s\\0", *values])
    done = subprocess.run(["bash", "-c", line], capture_output=True, check=True)
    assert done.stdout.decode("utf-8", "surrogateescape").split("\0")[:-1] == values


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_names_in_squeue_and_scancel_stay_whole(value: str) -> None:
    for argv in (
        cmd.squeue_argv(PATHS, value),
        cmd.scancel_argv(PATHS, job_name=value),
        cmd.sacct_argv(PATHS, job_name=value),
    ):
        assert shlex.split(cmd.command_line(argv)) == argv
        assert any(a.endswith(f"--name={value}") for a in argv)


# --- other builders ------------------------------------------------------------------------------


def test_scancel_needs_exactly_one_target_and_a_real_job_id() -> None:
    assert cmd.scancel_argv(PATHS, job_name=JOB) == ["/usr/bin/scancel", f"--name={JOB}"]
    with pytest.raises(ValueError):
        cmd.scancel_argv(PATHS)
    with pytest.raises(ValueError):
        cmd.scancel_argv(PATHS, slurm_job_id=1, job_name=JOB)
    with pytest.raises(ValueError):
        cmd.scancel_argv(PATHS, slurm_job_id=0)


def test_time_limit_update_is_absolute_minutes() -> None:
    assert cmd.scontrol_time_limit_argv(PATHS, 12, 95) == [
        "/usr/bin/scontrol",
        "update",
        "JobId=12",
        "TimeLimit=95",
    ]
    with pytest.raises(ValueError):
        cmd.scontrol_time_limit_argv(PATHS, 12, 0)


def test_requeue_names_the_job_by_its_slurm_id() -> None:
    assert cmd.scontrol_requeue_argv(PATHS, 12) == ["/usr/bin/scontrol", "requeue", "12"]
    with pytest.raises(ValueError):
        cmd.scontrol_requeue_argv(PATHS, 0)


def test_squeue_and_sacct_look_at_every_state_and_user() -> None:
    squeue = cmd.squeue_argv(PATHS, JOB)
    assert "--states=all" in squeue
    assert "--noheader" in squeue
    sacct = cmd.sacct_argv(PATHS, slurm_job_id=5)
    assert {"--parsable2", "--noheader", "--allocations", "--allusers", "--jobs=5"} <= set(sacct)
    assert not any(a.startswith("--json") for a in sacct)  # wrong exit codes in 22.05
    assert cmd.scontrol_job_argv(PATHS, 5) == [
        "/usr/bin/scontrol",
        "show",
        "job",
        "--oneliner",
        "5",
    ]


def test_sacct_disabled_is_recognised() -> None:
    assert cmd.sacct_disabled("Slurm accounting storage is disabled\n")
    assert not cmd.sacct_disabled("sacct: error: something else")


# --- scalar parsers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0:00", 0),
        ("45", 45),
        ("5:00", 300),
        ("00:05:00", 300),
        ("1:02:03", 3723),
        ("1-00:00:00", 86400),
        ("2-03", 2 * 86400 + 3 * 3600),
        ("1-02:03", 86400 + 2 * 3600 + 3 * 60),
    ],
)
def test_durations(text: str, seconds: int) -> None:
    assert cmd.parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("5:00", 5),
        ("00:10:00", 10),
        ("1-00:00:00", 1440),
        ("95", 95),
        ("1:30", 2),
        ("UNLIMITED", None),
        ("Partition_Limit", None),
        ("INFINITE", None),
    ],
)
def test_time_limits(text: str, minutes: int | None) -> None:
    assert cmd.parse_time_limit(text) == minutes


@pytest.mark.parametrize("text", ["abc", "1:x", "-5"])
def test_bad_durations_are_our_error(text: str) -> None:
    with pytest.raises(UnexpectedOutput):
        cmd.parse_duration(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("3:0", (768, 3, 0)), ("0:9", (9, 0, 9)), ("768", (768, 3, 0)), ("0", (0, 0, 0))],
)
def test_exit_codes(text: str, expected: tuple[int, int, int]) -> None:
    assert cmd.parse_exit_code(text) == expected


@given(st.integers(0, 255), st.integers(0, 127))
def test_exit_code_forms_agree(status: int, signal: int) -> None:
    from_text = cmd.parse_exit_code(f"{status}:{signal}")
    assert cmd.parse_exit_code(str(from_text[0])) == from_text


def test_timestamps_and_memory() -> None:
    assert cmd.parse_timestamp("2026-11-24T16:50:38") == dt.datetime(2026, 11, 24, 16, 50, 38)
    assert cmd.parse_timestamp("Unknown") is None
    assert cmd.parse_timestamp("N/A") is None
    assert cmd.parse_memory_mb("4096") == 4096
    assert cmd.parse_memory_mb("4G") == 4096
    assert cmd.parse_memory_mb("1.5T") == 1572864
    assert cmd.parse_memory_mb("512K") == 0
    with pytest.raises(UnexpectedOutput):
        cmd.parse_memory_mb("lots")


# --- record parsers ------------------------------------------------------------------------------

NAME = "0x" + "ab" * 32
USER = "0x90f79bf6eb2c4f870365e785982e1f101e93b906"
# squeue --Format of _JOB_FIELDS then Name, as the testbed's SLURM 22.05.8 prints it
SQUEUE_FAILED = (
    f"1|FAILED|768|{USER}|0:00|5:00|grid|2026-11-24T16:50:38|2026-11-24T16:50:38|"
    f"NonZeroExitCode|{NAME}|\n"
)
SQUEUE_RUNNING = (
    f"2|RUNNING|0|alice|1:05|1-00:00:00|grid|2026-11-24T16:52:00|2026-11-25T16:52:00|None|{NAME}|\n"
)


def test_squeue_by_name() -> None:
    first, second = cmd.parse_squeue(SQUEUE_FAILED + SQUEUE_RUNNING, NAME)
    assert (first.slurm_job_id, first.state, first.exit_status, first.exit_code_raw) == (
        1,
        "FAILED",
        3,
        768,
    )
    assert (first.name, first.user, first.partition, first.reason) == (
        NAME,
        USER,
        "grid",
        "NonZeroExitCode",
    )
    assert first.time_limit_minutes == 5
    assert first.start == dt.datetime(2026, 11, 24, 16, 50, 38)
    assert (second.state, second.elapsed_seconds, second.time_limit_minutes) == (
        "RUNNING",
        65,
        1440,
    )
    assert cmd.parse_squeue("\n", NAME) == []


def test_squeue_names_matched_ignoring_case_keep_their_own_spelling() -> None:
    """squeue --name compares without case: the job keeps the name it has, so the actor can
    tell a look-alike (another user's job named in capitals) from the job it asked for."""
    (job,) = cmd.parse_squeue(SQUEUE_FAILED.replace(NAME, NAME.upper()), NAME)
    assert job.name == NAME.upper()


def test_squeue_by_id_reads_the_one_job_whatever_its_name_holds() -> None:
    (job,) = cmd.parse_squeue(SQUEUE_FAILED, NAME)
    assert cmd.parse_squeue_job(SQUEUE_FAILED, 1) == job
    odd = "x|COMPLETED|0|u|0:01|5:00|grid|2026-01-01T00:00:00|2026-01-01T00:01:00|None|y\n2"
    renamed = cmd.parse_squeue_job(SQUEUE_FAILED.replace(NAME, odd), 1)
    assert renamed is not None
    assert (renamed.state, renamed.name) == ("FAILED", odd)
    assert cmd.parse_squeue_job("", 1) is None


def test_squeue_by_id_answering_another_job_is_our_error() -> None:
    with pytest.raises(UnexpectedOutput, match="answered job 1 for 2"):
        cmd.parse_squeue_job(SQUEUE_FAILED, 2)


def test_a_reason_with_a_separator_does_not_shift_the_name() -> None:
    (job,) = cmd.parse_squeue(SQUEUE_FAILED.replace("NonZeroExitCode", "held|by admin"), NAME)
    assert (job.reason, job.name) == ("held|by admin", NAME)


@pytest.mark.parametrize(
    "stdout",
    [
        "1|FAILED\n",
        SQUEUE_FAILED.replace(f"{NAME}|", NAME),  # no trailing separator
        SQUEUE_FAILED.replace(NAME, "0x" + "cd" * 32),  # not the name asked for
        SQUEUE_FAILED + SQUEUE_FAILED,  # one id twice
        SQUEUE_FAILED.replace("FAILED", "failed; rm"),
    ],
)
def test_squeue_lines_that_split_in_no_single_way_are_our_error(stdout: str) -> None:
    with pytest.raises(UnexpectedOutput):
        cmd.parse_squeue(stdout, NAME)


def test_squeue_ids_are_plain_and_lookups_name_exactly_one_target() -> None:
    by_id = cmd.squeue_argv(PATHS, slurm_job_id=7)
    assert "--jobs=7" in by_id and "--states=all" in by_id
    assert not any(a.startswith("--name") for a in by_id)
    fields = next(a for a in by_id if a.startswith("--Format="))
    assert fields.removeprefix("--Format=").split(",")[0] == "JobID:|"  # never "12_3"
    assert fields.endswith(",Name:|")
    for text in ("Comment", "WorkDir", "StdOut", "Command"):
        assert text.lower() not in fields.lower()
    with pytest.raises(ValueError):
        cmd.squeue_argv(PATHS)
    with pytest.raises(ValueError):
        cmd.squeue_argv(PATHS, NAME, slurm_job_id=7)
    with pytest.raises(ValueError):
        cmd.squeue_argv(PATHS, slurm_job_id=0)


SACCT = (
    f"12|CANCELLED by 0|0:15|2026-11-24T16:50:38|2026-11-24T16:52:38|120|5|alice|grid|None|{NAME}\n"
    f"13|COMPLETED|0:0|2026-11-24T16:50:38|2026-11-24T16:50:40|2|UNLIMITED|bob|grid|None|{NAME}\n"
    f"14_3|COMPLETED|0:0|Unknown|Unknown|0|5|bob|grid|None|{NAME}\n"
)


def test_sacct_by_name() -> None:
    cancelled, completed = cmd.parse_sacct(SACCT, NAME)
    assert (cancelled.slurm_job_id, cancelled.state, cancelled.exit_signal) == (12, "CANCELLED", 15)
    assert cancelled.elapsed_seconds == 120
    assert cancelled.name == NAME
    assert completed.time_limit_minutes is None
    assert completed.user == "bob"


def test_sacct_names_padded_by_the_database_are_kept_as_printed() -> None:
    """slurmdbd compares names as MySQL does: without case and trailing spaces."""
    (job,) = cmd.parse_sacct(SACCT.splitlines()[0].replace(NAME, NAME.upper() + "  "), NAME)
    assert job.name == NAME.upper() + "  "


def test_sacct_by_id() -> None:
    line = SACCT.splitlines()[1] + "\n"
    job = cmd.parse_sacct_job(line, 13)
    assert job is not None
    assert (job.slurm_job_id, job.state, job.name) == (13, "COMPLETED", NAME)
    assert cmd.parse_sacct_job("", 13) is None
    with pytest.raises(UnexpectedOutput):
        cmd.parse_sacct_job(line, 12)
    argv = cmd.sacct_argv(PATHS, slurm_job_id=13)
    assert next(a for a in argv if a.startswith("--format=")).endswith(",Reason,JobName")


# --- a customer's text never shadows SLURM's fields ----------------------------------------------

START, FORGED_END = "2026-11-24T16:50:38", "2026-11-24T16:51:38"
FORGED = f"x JobState=COMPLETED Reason=None ExitCode=0:0 StartTime={START} EndTime={FORGED_END}"
SCONTROL_RUNNING = (
    f"JobId=1 JobName={NAME} UserId={USER}(20000) JobState=RUNNING Reason=None ExitCode=0:0 "
    f"RunTime=00:01:05 TimeLimit=00:05:00 StartTime={START} EndTime=2026-11-24T16:55:38 "
    f"Partition=grid WorkDir=/tmp Comment={FORGED}  StdErr=/tmp/x StdIn=/dev/null StdOut=/tmp/x"
)


def test_a_comment_shaped_like_fields_makes_the_scontrol_line_unreadable() -> None:
    """The forgery of issue 11: scontrol prints Comment= raw; a later JobState= once overwrote
    the real one and a forged FINISHED was billed."""
    with pytest.raises(UnexpectedOutput, match="JobState twice"):
        cmd.parse_scontrol_record(SCONTROL_RUNNING)


def test_a_name_shaped_like_a_squeue_line_is_only_a_name() -> None:
    """The job's name, the one customer text squeue prints, comes last: a renamed job with a
    forged COMPLETED line in its name is still RUNNING, and by name it is not found at all."""
    forged = f"{NAME}|\n1|COMPLETED|0|{USER}|1:00|5:00|grid|{START}|{FORGED_END}|None|{NAME}"
    stdout = SQUEUE_RUNNING.replace("2|", "1|", 1).replace(f"{NAME}|", f"{forged}|")
    job = cmd.parse_squeue_job(stdout, 1)
    assert job is not None
    assert (job.state, job.end, job.name) == ("RUNNING", dt.datetime(2026, 11, 25, 16, 52), forged)
    with pytest.raises(UnexpectedOutput):
        cmd.parse_squeue(stdout, NAME)  # SLURM would not match it: refused, never misread


@pytest.mark.parametrize(
    ("parse", "text"),
    [
        (cmd.parse_sbatch, "²"),
        (cmd.parse_sbatch, "1" * 5000),
        (cmd.parse_time_limit, "²"),
        (cmd.parse_time_limit, "9" * 4400),
        (cmd.parse_time_limit, "99999999999"),
        (cmd.parse_duration, "9" * 5000),
        (cmd.parse_duration, "1:٣٠"),
        (cmd.parse_duration, "1_000"),
        (cmd.parse_exit_code, "9" * 5000),
        (cmd.parse_exit_code, "256:0"),
        (cmd.parse_exit_code, "+3"),
        (cmd.parse_memory_mb, "1" * 5000),
        (cmd.parse_memory_mb, "9" * 400 + "P"),
        (cmd.parse_memory_mb, "99999999999P"),
        (cmd.parse_memory_mb, "1e400"),
        (cmd.parse_timestamp, "2026-02-30T00:00:00"),
        (cmd.parse_timestamp, "2026-11-24T16:50:38+05:00"),
        (cmd.parse_timestamp, "²026-11-24T16:50:38"),
    ],
)
def test_odd_numbers_are_our_error_not_a_crash(parse: object, text: str) -> None:
    assert callable(parse)
    with pytest.raises(UnexpectedOutput):
        parse(text)


def test_odd_numbers_in_records_are_our_error() -> None:
    for stdout in (
        SQUEUE_FAILED.replace("1|FAILED", "¹|FAILED"),
        SQUEUE_FAILED.replace("|768|", "|" + "7" * 4400 + "|"),
        SQUEUE_FAILED.replace("|5:00|", "|" + "5" * 5000 + "|"),
    ):
        with pytest.raises(UnexpectedOutput):
            cmd.parse_squeue(stdout, NAME)
    for line in (
        node_line(tres="cpu=8,gres/gpu=" + "9" * 5000),
        node_line(tres="cpu=8,gres/gpu=²"),
        node_line().replace("RealMemory=4096", "RealMemory=" + "9" * 5000),
        node_line(tres="mem=4G").replace("CPUTot=8", "CPUTot=²"),
        node_line(gres="gpu:a100:" + "9" * 5000, tres="cpu=4"),
        node_line() + " State=IDLE",  # a key twice
    ):
        with pytest.raises(UnexpectedOutput):
            cmd.parse_nodes(line, "grid")


NODE = (
    "NodeName=n1 Arch=x86_64 CoresPerSocket=1  CPUAlloc=0 CPUEfctv=8 CPUTot=8 CPULoad=1.66 "
    "AvailableFeatures=(null) ActiveFeatures=(null) Gres={gres} NodeAddr=127.0.0.1 "
    "NodeHostName=localhost Port=17001 Version=22.05.8 OS=Linux 6.18.44-fc-v657 #1 SMP "
    "PREEMPT_DYNAMIC @0  RealMemory=4096 AllocMem=0 FreeMem=19975 Sockets=8 Boards=1 "
    "State={state} ThreadsPerCore=1 TmpDisk=0 Weight=1 Owner=N/A MCS_label=N/A "
    "Partitions={partitions}  BootTime=2026-11-24T16:31:18 SlurmdStartTime=2026-11-24T16:50:24 "
    "LastBusyTime=2026-11-24T16:50:25 CfgTRES={tres} AllocTRES= CapWatts=n/a CurrentWatts=0 "
    "AveWatts=0 ExtSensorsJoules=n/s ExtSensorsWatts=0 ExtSensorsTemp=n/s"
)


def node_line(
    name: str = "n1",
    *,
    gres: str = "(null)",
    state: str = "IDLE",
    partitions: str = "grid",
    tres: str = "cpu=8,mem=4G,billing=8",
) -> str:
    line = NODE.format(gres=gres, state=state, partitions=partitions, tres=tres)
    return line.replace("NodeName=n1", f"NodeName={name}")


def test_nodes_of_the_partition() -> None:
    text = "\n".join(
        [
            node_line("n1"),
            node_line("n2", state="MIXED", tres="cpu=16,mem=64G,gres/gpu=4,billing=16"),
            node_line("n3", partitions="domain"),  # a substring match would take it for "main"
            node_line("n4", partitions="other,grid", gres="gpu:a100:2(S:0-1)", tres="cpu=4"),
        ]
    )
    nodes = cmd.parse_nodes(text, "grid")
    assert [n.name for n in nodes] == ["n1", "n2", "n4"]
    n1, n2, n4 = nodes
    assert (n1.cpus, n1.memory_mb, n1.gpus, n1.responding) == (8, 4096, 0, True)
    assert (n2.cpus, n2.gpus, n2.state) == (16, 4, "MIXED")
    assert n4.gpus == 2
    assert n4.partitions == ("other", "grid")
    assert [n.name for n in cmd.parse_nodes(text, "main")] == []
    assert [n.name for n in cmd.parse_nodes(text, "domain")] == ["n3"]


@pytest.mark.parametrize("state", ["IDLE*", "DOWN*", "DOWN+NOT_RESPONDING", "IDLE+NOT_RESPONDING"])
def test_unresponsive_nodes_are_marked(state: str) -> None:
    (node,) = cmd.parse_nodes(node_line(state=state), "grid")
    assert not node.responding
    assert "*" not in node.state


def test_hardware_comes_from_one_listing() -> None:
    nodes = cmd.parse_nodes(
        node_line("n2", tres="cpu=16,mem=8G,gres/gpu=1") + "\n" + node_line("n1"), "grid"
    )
    assert cmd.hardware_of(nodes) == Hardware(
        nodes=2, gpus_per_node=(0, 1), cpus_per_node=(8, 16), mem_per_node=(4096, 4096)
    )
