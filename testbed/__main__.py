"""``testbed``: bring the local grid up and down, and act as its customers and its market.

    testbed up [--register-provider] [--reporters scripts|plugins] [--plugins-dir DIR]
                                       start everything (idempotent; "already up" when it is),
                                       with these SLURM-side reporters live: this project's
                                       hooks (scripts, the default) or the operator's real C++
                                       plugins from DIR (default ../shared/real-plugins); a
                                       testbed up with the other kind is switched (SLURM
                                       restarted, its jobs kept)
    testbed down                       stop everything ``up`` started
    testbed status                     which parts run, and which reporters are live
    testbed env                        JSON with everything a client needs
    testbed put-script FILE            store a batch script; prints its location hash
    testbed submit-job --script FILE [--cpus N --mem-per-cpu MB --gpus N --ntasks N
                       --credits C --customer INDEX --job-name NAME --no-schedule]
                                       request a job as a customer, meta-schedule it to the
                                       provider; prints the job id
    testbed approve-provider           register the provider with the partition's hardware and
                                       approve it as admin

Progress goes to stderr, results to stdout. Exit status 1 on any testbed error, with a message
naming the part and its log file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import msgspec

from testbed import grid, slurm
from testbed.layout import Layout
from testbed.processes import TestbedError


def _progress(message: str) -> None:
    print(f"testbed: {message}", file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="testbed", description="The real local grid: SLURM, sshd, anvil, sbatch service."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the testbed (idempotent)")
    up.add_argument(
        "--register-provider",
        action="store_true",
        help="also register the provider and approve it (normally the supervisor registers)",
    )
    up.add_argument(
        "--reporters",
        choices=slurm.REPORTERS,
        default=slurm.DEFAULT_REPORTERS,
        help="SLURM-side reporters: this project's hooks (scripts) or the real C++ plugins",
    )
    up.add_argument(
        "--plugins-dir",
        type=Path,
        default=None,
        help=f"folder of the real plugins (default ${slurm.PLUGINS_DIR_ENV}, else "
        f"{slurm.DEFAULT_PLUGINS_DIR})",
    )
    commands.add_parser("down", help="stop everything the testbed started")
    commands.add_parser("status", help="which parts run")
    commands.add_parser("env", help="print the testbed env as JSON")
    put = commands.add_parser("put-script", help="store a batch script, print its location hash")
    put.add_argument("file", type=Path)
    commands.add_parser("approve-provider", help="register and approve the provider")
    submit = commands.add_parser("submit-job", help="request and meta-schedule a job")
    submit.add_argument("--script", type=Path, required=True, help="batch script file")
    submit.add_argument("--cpus", type=int, default=1, help="CPUs per task")
    submit.add_argument("--mem-per-cpu", type=int, default=100, help="MB per CPU")
    submit.add_argument("--gpus", type=int, default=0, help="GPUs for the whole job")
    submit.add_argument("--ntasks", type=int, default=1)
    submit.add_argument("--credits", type=int, default=100, help="whole credits to lock")
    submit.add_argument(
        "--customer", type=int, default=0, help="customer: position 0..3 or account index 3..6"
    )
    submit.add_argument("--job-name", default="testbed")
    submit.add_argument(
        "--no-schedule", action="store_true", help="leave the job pending (no metaSchedule)"
    )
    return parser


def run(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    layout = Layout.from_env()
    command: str = args.command
    if command == "up":
        result = grid.up(
            layout,
            register_provider=args.register_provider,
            reporters=args.reporters,
            plugins_dir=args.plugins_dir,
            log=_progress,
        )
        if result.switched:
            print(f"already up; reporters switched to {args.reporters} in {result.seconds:.1f} s")
        elif result.already_up:
            print("already up")
        else:
            print(f"up in {result.seconds:.1f} s")
    elif command == "down":
        stopped = grid.down(layout)
        print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
    elif command == "status":
        parts = grid.status(layout)
        for name, running in parts.items():
            print(f"{name:16} {'up' if running else 'down'}")
        print(f"{'reporters':16} {grid.reporters_status(layout)}")
        return 0 if all(parts.values()) else 3
    elif command == "env":
        text = msgspec.json.format(msgspec.json.encode(grid.require_env(layout)), indent=2)
        print(text.decode())
    elif command == "put-script":
        from testbed import scripts

        env = grid.require_env(layout)
        print(scripts.put_script(Path(env.scripts_dir), args.file.read_bytes()))
    elif command == "approve-provider":
        grid.approve_provider(grid.require_env(layout))
        print("provider registered and approved")
    elif command == "submit-job":
        request = grid.JobRequest(
            cpus_per_task=args.cpus,
            mem_per_cpu=args.mem_per_cpu,
            gpus=args.gpus,
            ntasks=args.ntasks,
            credits=args.credits,
            customer=args.customer,
            job_name=args.job_name,
            schedule=not args.no_schedule,
        )
        print(grid.submit_job(grid.require_env(layout), args.script.read_bytes(), request))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(argv)
    except TestbedError as exc:
        print(f"testbed: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"testbed: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
