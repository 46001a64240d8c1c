"""Job definitions from the chain and the SLURM command lines built from them
(actors.slurm.commands, the SLURM actor's submission check): a definition is submitted or refused
with a reason, never a crash, and no value a customer controls ever becomes more than one shell
word of the command line the login node runs."""

from __future__ import annotations

import shlex
import subprocess

import asyncssh
from hypothesis import event, given
from hypothesis import strategies as st

from actors.grid import Affinity, JobDefinition, Label
from actors.slurm import commands as cmd
from actors.slurm.actor import SlurmActor
from actors.slurm.messages import SubmissionRefused, SubmitBatch, SubmitJob
from config.schema import CustomerUsers
from tests.fuzz.budget import fuzz

PATHS = cmd.CommandPaths()
KEY = asyncssh.generate_private_key("ssh-ed25519").export_private_key()
JOB = "0x" + "ab" * 32

SHELL = ["'", '"', "$(id)", "`id`", "\\", "\n", ";", "|", "&", " ", "*", "~", "#", "--", "-x", "="]
hostile = st.lists(st.sampled_from(SHELL) | st.text(max_size=8), max_size=10).map("".join)
no_nul = hostile.filter(lambda text: "\0" not in text)
# Anything the chain can carry in a uint64 (and a little beyond, as a decoder might pass on).
chain_ints = st.integers(-(2**64), 2**64 + 5) | st.sampled_from([0, 1, 2**32, 2**63 - 1])
labels = st.builds(Label, key=hostile, value=hostile)
definitions = st.builds(
    JobDefinition,
    gpus=chain_ints,
    mem_per_cpu=chain_ints,
    cpus_per_task=chain_ints,
    ntasks=chain_ints,
    batch_location_hash=hostile,
    storage_type=chain_ints,
    uses=st.lists(labels, max_size=3).map(tuple),
    affinity=st.lists(st.builds(Affinity, label=labels, op=hostile), max_size=2).map(tuple),
) | st.builds(
    JobDefinition,  # one a SLURM cluster could run, with hostile text
    gpus=st.integers(0, 8),
    mem_per_cpu=st.integers(0, 4096),
    cpus_per_task=st.integers(1, 16),
    ntasks=st.integers(1, 16),
    batch_location_hash=hostile,
    uses=st.lists(labels, max_size=3).map(tuple),
)
minutes = st.integers(1, 10_000) | chain_ints
job_ids = (
    st.sampled_from([JOB, JOB, JOB, JOB.upper().replace("0X", "0x")])
    | st.sampled_from([JOB, JOB + "\n", JOB[:-1], "0x" + "g" * 64])
    | hostile
)
customers = st.sampled_from(["0x" + "cd" * 20, "0x" + "CD" * 20, "0x" + "cd" * 20 + "\n"])
scripts = st.sampled_from(["", "echo hi\n", "#SBATCH -p other\ntrue"]) | hostile
templates = st.sampled_from(["{address}", "c{hex}", "grid-{hex}"])


def one_word_each(argv: list[str]) -> None:
    """The command line splits back into exactly ``argv``: each value is one word."""
    assert shlex.split(cmd.command_line(argv)) == argv


@fuzz()
@given(job_ids, customers, definitions, minutes, scripts, templates)
def test_a_job_from_the_chain_is_submitted_quoted_or_refused_with_a_reason(
    job: str, customer: str, definition: JobDefinition, minutes: int, script: str, template: str
) -> None:
    actor = SlurmActor(
        host="login",
        admin_user="slurm",
        private_key=KEY,
        partition="grid",
        public_address="10.0.0.1:3000",
        customer_user=CustomerUsers(template=template).user_for,
    )
    prepared = actor._prepare(SubmitJob(job, customer, definition, minutes, script))
    if isinstance(prepared, SubmissionRefused):
        event("refused")
        assert prepared.reason
        return
    event("submitted")
    user, spec = prepared
    assert cmd.refusal(definition, minutes, script) is None
    assert user == template.format(address=customer.lower(), hex=customer.lower()[2:])
    argv = cmd.sbatch_argv(PATHS, spec)
    one_word_each(argv)
    assert f"--job-name={JOB}" in argv  # the canonical job id, whatever spelling came in
    assert cmd.batch_script(script).startswith(cmd.BATCH_PRELUDE)  # the script goes on stdin


@fuzz()
@given(definitions, chain_ints, hostile)
def test_refusal_answers_for_any_definition(
    definition: JobDefinition, minutes: int, script: str
) -> None:
    reason = cmd.refusal(definition, minutes, script)
    if reason is None:
        assert 1 <= minutes <= cmd.LIMITS.max_minutes
        assert 1 <= definition.ntasks <= cmd.LIMITS.max_ntasks
        assert 1 <= definition.cpus_per_task <= cmd.LIMITS.max_cpus_per_task
        assert 0 <= definition.mem_per_cpu <= cmd.LIMITS.max_mem_per_cpu_mb
        assert 0 <= definition.gpus <= cmd.LIMITS.max_gpus
        assert "\0" not in script


@fuzz()
@given(hostile, hostile, hostile, st.none() | hostile, st.integers(0, 10**6))
def test_every_customer_value_of_sbatch_stays_one_word(
    name: str, comment: str, output: str, workdir: str | None, number: int
) -> None:
    sizes = {"time_limit_minutes": number, "cpus_per_task": number}
    spec = cmd.SubmitSpec(
        **sizes, job_name=name, comment=comment, partition="grid", ntasks=number,
        mem_per_cpu_mb=number, gpus=number, output=output, workdir=workdir,
    )  # fmt: skip
    argv = cmd.sbatch_argv(PATHS, spec)
    one_word_each(argv)
    assert f"--job-name={name}" in argv and f"--comment={comment}" in argv
    batch = SubmitBatch(
        **sizes, user="root", job_name=name, comment=comment, nodes=number,
        ntasks_per_node=number, gpus_per_node=number, nodelist=workdir or "", output=output,
        script=comment,
    )  # fmt: skip
    one_word_each(cmd.batch_sbatch_argv(PATHS, batch, "grid"))


@fuzz()
@given(hostile, st.integers(1, 2**40))
def test_names_and_ids_in_lookups_and_cancels_stay_one_word(name: str, slurm_job_id: int) -> None:
    for argv in (
        cmd.squeue_argv(PATHS, name),
        cmd.squeue_argv(PATHS, slurm_job_id=slurm_job_id),
        cmd.sacct_argv(PATHS, job_name=name),
        cmd.sacct_argv(PATHS, slurm_job_id=slurm_job_id),
        cmd.scancel_argv(PATHS, job_name=name),
        cmd.scancel_argv(PATHS, slurm_job_id=slurm_job_id),
        cmd.scontrol_time_limit_argv(PATHS, slurm_job_id, slurm_job_id),
        cmd.scontrol_requeue_argv(PATHS, slurm_job_id),
    ):
        one_word_each(argv)


@fuzz()
@given(hostile, st.integers(0, 2**40))
def test_an_output_path_reaches_tail_as_one_word(path: str, max_bytes: int) -> None:
    words = shlex.split(cmd.read_output_command(path, max_bytes))
    assert words == [
        "if",
        "[",
        "-r",
        path,
        "];",
        "then",
        "tail",
        "-c",
        str(max_bytes),
        "--",
        path + ";",
        "else",
        "exit",
        "3;",
        "fi",
    ]


@fuzz(0.2)
@given(st.lists(no_nul, min_size=1, max_size=4))
def test_a_real_bash_receives_exactly_the_arguments(values: list[str]) -> None:
    """The login shell (bash) runs the line: printf shows each argument as bash received it."""
    line = cmd.command_line(["printf", "%s\\0", *values])
    done = subprocess.run(["bash", "-c", line], capture_output=True, check=True)
    assert done.stdout.decode("utf-8", "surrogateescape").split("\0")[:-1] == values
