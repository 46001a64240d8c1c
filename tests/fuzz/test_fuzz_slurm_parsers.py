"""SLURM's answers as the parsers of actors.slurm.commands read them: whatever SLURM (or a
customer writing a job's name or comment) prints, a parser answers or raises UnexpectedOutput,
and no customer text shadows a field SLURM printed."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st

from actors.slurm import commands as cmd
from actors.slurm.messages import SlurmJob, UnexpectedOutput
from tests.fuzz.budget import fuzz

NAME = "0x" + "ab" * 32
USER = "0x90f79bf6eb2c4f870365e785982e1f101e93b906"
START, END = "2026-11-24T16:50:38", "2026-11-24T16:55:38"

# Pieces that made parsers misread or crash: separators, forged fields, odd digits.
PIECES = [
    "|",
    "\n",
    "\r",
    " ",
    "\t",
    "=",
    "\x00",
    "JobState=COMPLETED",
    " JobState=COMPLETED ",
    " EndTime=2026-11-24T16:51:00",
    " StartTime=2026-11-24T16:50:00",
    " ExitCode=0:0",
    "COMPLETED",
    f"|\n1|COMPLETED|0|{USER}|1:00|5:00|grid|{START}|{END}|None|{NAME}|\n",
    "²",
    "٣",
    "\uff11",
    "9" * 4400,
    "1e400",
    "-1",
    "+3",
    "1_000",
    "UNLIMITED",
    "N/A",
    "Unknown",
    NAME,
    NAME.upper(),
    "0:00",
    "1-00:00:00",
    "12_3",
]
hostile = st.lists(st.sampled_from(PIECES) | st.text(max_size=6), max_size=8).map("".join)
numbers = st.sampled_from(["0", "1", "768", "-2", "4294967295", "99999999999999999999"])
field = hostile | numbers | st.text(max_size=12)


def squeue_line(fields: list[str], name: str) -> str:
    return "|".join([*fields, name]) + "|\n"


GENUINE = ["7", "RUNNING", "0", USER, "1:05", "5:00", "grid", START, END, "None"]
GENUINE_SACCT = ["7", "RUNNING", "0:0", START, "Unknown", "65", "5", USER, "grid", "None"]


def only_unexpected_output(parse: Callable[[], object]) -> object:
    """Run ``parse``; UnexpectedOutput is an answer (None), anything else fails the test."""
    try:
        return parse()
    except UnexpectedOutput:
        return None


@fuzz()
@given(st.text(), st.integers(1, 2**40))
def test_any_text_is_parsed_or_refused_with_unexpected_output(text: str, slurm_job_id: int) -> None:
    for parse in (
        lambda: cmd.parse_squeue(text, NAME),
        lambda: cmd.parse_squeue_job(text, slurm_job_id),
        lambda: cmd.parse_sacct(text, NAME),
        lambda: cmd.parse_sacct_job(text, slurm_job_id),
        lambda: cmd.parse_scontrol_record(text),
        lambda: cmd.parse_nodes(text, "grid"),
        lambda: cmd.parse_sbatch(text),
        lambda: cmd.parse_duration(text),
        lambda: cmd.parse_time_limit(text),
        lambda: cmd.parse_exit_code(text),
        lambda: cmd.parse_timestamp(text),
        lambda: cmd.parse_memory_mb(text),
    ):
        only_unexpected_output(parse)


@fuzz()
@given(st.lists(field, min_size=10, max_size=10), hostile, st.integers(1, 10**6))
def test_lines_of_odd_fields_are_parsed_or_refused(
    fields: list[str], name: str, slurm_job_id: int
) -> None:
    line = squeue_line(fields, name)
    for job in [only_unexpected_output(lambda: cmd.parse_squeue_job(line, slurm_job_id))]:
        assert job is None or (isinstance(job, SlurmJob) and job.slurm_job_id == slurm_job_id)
    jobs = only_unexpected_output(lambda: cmd.parse_squeue(line * 2, NAME))
    assert jobs is None or isinstance(jobs, list)
    sacct = "|".join([*fields, name]) + "\n"
    only_unexpected_output(lambda: cmd.parse_sacct(sacct, NAME))
    only_unexpected_output(lambda: cmd.parse_sacct_job(sacct, slurm_job_id))


@fuzz()
@given(hostile)
def test_a_name_looked_up_by_id_is_only_a_name(name: str) -> None:
    """By id, SLURM prints one job: its fields are SLURM's, whatever its name holds."""
    job = cmd.parse_squeue_job(squeue_line(GENUINE, name), 7)
    assert job is not None
    assert (job.state, job.elapsed_seconds, job.name) == ("RUNNING", 65, name)
    assert job.end is not None and job.end.isoformat() == END
    accounted = cmd.parse_sacct_job("|".join([*GENUINE_SACCT, name]) + "\n", 7)
    assert accounted is not None
    assert (accounted.state, accounted.end, accounted.name) == ("RUNNING", None, name)


@fuzz()
@given(st.lists(st.sampled_from([NAME, NAME.upper(), NAME + "  "]) | hostile, max_size=4))
def test_a_name_looked_up_by_name_never_forges_a_field(names: list[str]) -> None:
    """By name, every line SLURM printed is a RUNNING job: a parse either refuses the answer
    or reads only RUNNING jobs named (up to case and padding) as asked."""
    lines = [squeue_line([str(index + 1), *GENUINE[1:]], name) for index, name in enumerate(names)]
    jobs = only_unexpected_output(lambda: cmd.parse_squeue("".join(lines), NAME))
    if jobs is not None:
        assert isinstance(jobs, list)
        for job in jobs:
            assert isinstance(job, SlurmJob)
            assert (job.state, job.elapsed_seconds) == ("RUNNING", 65)
            assert job.name.rstrip(" ").lower() == NAME
            assert 1 <= job.slurm_job_id <= len(names)


SCONTROL = (
    f"JobId=7 JobName={NAME} UserId={USER}(20000) JobState=RUNNING Reason=None ExitCode=0:0 "
    f"RunTime=00:01:05 TimeLimit=00:05:00 StartTime={START} EndTime={END} Partition=grid "
    "WorkDir=/tmp Comment={comment}  StdErr=/tmp/x StdIn=/dev/null StdOut=/tmp/x Power="
)


@fuzz()
@given(hostile.filter(lambda text: "\n" not in text))
def test_a_comment_never_shadows_a_field_scontrol_printed(comment: str) -> None:
    genuine = cmd.parse_scontrol_record(SCONTROL.replace("{comment}", "x"))
    record = only_unexpected_output(
        lambda: cmd.parse_scontrol_record(SCONTROL.replace("{comment}", comment))
    )
    if record is not None:
        assert isinstance(record, dict)
        for key, value in genuine.items():
            if key != "Comment":
                assert record[key] == value, key


NODE = (
    "NodeName=n1 Arch=x86_64 CPUTot={cpus} RealMemory={memory} State={state} "
    "Partitions={partitions} CfgTRES={tres} Gres={gres} Reason={reason}"
)


@fuzz()
@given(
    field, field, field, st.sampled_from(["grid", "grid,other", ""]) | field, field, field, hostile
)
def test_node_listings_are_parsed_or_refused(
    cpus: str, memory: str, state: str, partitions: str, tres: str, gres: str, reason: str
) -> None:
    line = NODE.format(
        cpus=cpus,
        memory=memory,
        state=state,
        partitions=partitions,
        tres=tres,
        gres=gres,
        reason=reason,
    )
    nodes = only_unexpected_output(lambda: cmd.parse_nodes(line, "grid"))
    if nodes:
        assert isinstance(nodes, list)
        for node in nodes:
            assert 0 <= node.cpus < 10**9 and 0 <= node.memory_mb <= cmd.MAX_MEMORY_MB
            assert 0 <= node.gpus < 10**9
