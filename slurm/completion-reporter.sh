#!/bin/sh
# Completion reporter: SLURM's jobcomp/script plugin runs this once per job when the job ends,
# whatever its end (COMPLETED, FAILED, CANCELLED, TIMEOUT, ...), as root, with no arguments: the
# job is described only by environment variables (JOBID, JOBSTATE, EXITCODE, START, END, UID,
# USERNAME, JOBNAME, NODES, PARTITION, ...).
#
# For now it only writes one line per call to the hook log; reporting the final state, duration
# and exit code to the supervisor comes in a later issue. It must never fail: SLURM does not wait
# for a useful answer, and a broken hook must not break the cluster.
#
# Settings: GRID_HOOK_LOG_DIR, read from ${GRID_HOOKS_ENV:-/etc/slurm/grid-hooks.env} if present.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
GRID_HOOK_LOG_DIR=/var/log/grid-supervisor
settings=${GRID_HOOKS_ENV:-/etc/slurm/grid-hooks.env}
# shellcheck disable=SC1090
[ -r "$settings" ] && . "$settings"
{
    mkdir -p "$GRID_HOOK_LOG_DIR" &&
        printf '%s hook=completion job=%s state=%s exit=%s user=%s name=%s nodes=%s start=%s end=%s\n' \
            "$(date +%s)" "$JOBID" "$JOBSTATE" "$EXITCODE" "$USERNAME" "$JOBNAME" "$NODES" \
            "$START" "$END" >>"$GRID_HOOK_LOG_DIR/hooks.log"
} 2>/dev/null
exit 0
