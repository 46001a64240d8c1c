#!/bin/sh
# Completion reporter: SLURM's jobcomp/script plugin runs this once per job when the job ends,
# whatever its end (COMPLETED, FAILED, CANCELLED, TIMEOUT, ...), as root, with no arguments: the
# job is described only by environment variables (JOBID, JOBSTATE, EXITCODE, START, END, UID,
# USERNAME, JOBNAME, NODES, PARTITION, ...).
#
# It writes one line per call to the hook log, then runs `grid-supervisor report jobcomp`, which
# sends the final state, duration and exit code of the grid's jobs (name 0x<job id>, comment
# "supervisor <address>") to the supervisor, or spools the report when the supervisor cannot be
# reached (and first retries what an earlier run spooled). It must never fail: SLURM does not wait
# for a useful answer, and a broken hook must not break the cluster.
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
        printf '%s hook=completion job=%s state=%s exit=%s user=%s name=%s nodes=%s start=%s end=%s\n' \
            "$(date +%s)" "$JOBID" "$JOBSTATE" "$EXITCODE" "$USERNAME" "$JOBNAME" "$NODES" \
            "$START" "$END" >>"$log"
} 2>/dev/null
[ -w "$log" ] || log=/dev/null # the report matters more than its log line
bin=${GRID_SUPERVISOR_BIN:-$(command -v grid-supervisor)}
[ -n "$bin" ] || bin="$(dirname "$0")/../.venv/bin/grid-supervisor"
"$bin" report jobcomp </dev/null >>"$log" 2>&1 ||
    printf '%s report=jobcomp job=%s outcome=error reason=%s failed\n' \
        "$(date +%s)" "$JOBID" "$bin" >>"$log" 2>/dev/null
exit 0
