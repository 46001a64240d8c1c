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
# PATH, the settings (/etc/slurm/grid-hooks.env) and the log and report steps are in
# hooks-common.sh, which must be installed next to this script.
common="${0%/*}/hooks-common.sh" # sourced before PATH is set: no dirname here
[ -r "$common" ] || { echo "grid hook: $common is missing; nothing reported" >&2; exit 0; }
# shellcheck source=hooks-common.sh
. "$common"
hook_log 'hook=completion job=%s state=%s exit=%s user=%s name=%s nodes=%s start=%s end=%s' \
    "$JOBID" "$JOBSTATE" "$EXITCODE" "$USERNAME" "$JOBNAME" "$NODES" "$START" "$END"
hook_report jobcomp "$JOBID"
exit 0
