#!/bin/sh
# Controller prolog reporter: slurmctld runs this (PrologSlurmctld=) as root once per job, when
# the job has been allocated its nodes and is about to start. SLURM sets no PATH for it. The job
# is described by SLURM_JOB_ID, SLURM_JOB_NAME, SLURM_JOB_USER, SLURM_JOB_NODELIST, ...
#
# It writes one line per call to the hook log, then runs `grid-supervisor report prolog`, which
# tells the supervisor that a grid job (name 0x<job id>, comment "supervisor <address>") is
# RUNNING, or spools the report when the supervisor cannot be reached (and first retries what an
# earlier run spooled). Once per job, unlike the node prologs. It must always exit 0: a failing
# PrologSlurmctld requeues or fails the job.
#
# Settings, read (and exported) from ${GRID_HOOKS_ENV:-/etc/slurm/grid-hooks.env} if present:
#   GRID_HOOK_LOG_DIR     folder of hooks.log (default /var/log/grid-supervisor)
#   GRID_SUPERVISOR_BIN   the grid-supervisor executable (default: on PATH, else this checkout's
#                         .venv/bin/grid-supervisor)
#   GRID_REPORT_*         the reporter's settings (see `grid-supervisor report --help`): SPOOL_DIR,
#                         TLS, CA_FILE, SECRET_FILE, TIMEOUT, SCONTROL
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
GRID_HOOK_LOG_DIR=/var/log/grid-supervisor
GRID_SUPERVISOR_BIN=
settings=${GRID_HOOKS_ENV:-/etc/slurm/grid-hooks.env}
set -a
# shellcheck disable=SC1090
[ -r "$settings" ] && . "$settings"
set +a
log="$GRID_HOOK_LOG_DIR/hooks.log"
{
    mkdir -p "$GRID_HOOK_LOG_DIR" &&
        printf '%s hook=prolog-slurmctld job=%s user=%s name=%s nodes=%s\n' \
            "$(date +%s)" "$SLURM_JOB_ID" "$SLURM_JOB_USER" "$SLURM_JOB_NAME" \
            "$SLURM_JOB_NODELIST" >>"$log"
} 2>/dev/null
[ -w "$log" ] || log=/dev/null # the report matters more than its log line
bin=${GRID_SUPERVISOR_BIN:-$(command -v grid-supervisor)}
[ -n "$bin" ] || bin="$(dirname "$0")/../.venv/bin/grid-supervisor"
"$bin" report prolog </dev/null >>"$log" 2>&1 ||
    printf '%s report=prolog job=%s outcome=error reason=%s failed\n' \
        "$(date +%s)" "$SLURM_JOB_ID" "$bin" >>"$log" 2>/dev/null
exit 0
