#!/bin/sh
# Prolog reporter: slurmd runs this (Prolog=) as root on every node allocated to a job, before
# the job starts there. SLURM sets no PATH for prologs, so it is set here. The job is described by
# SLURM_JOB_ID, SLURM_JOB_USER, SLURM_JOB_UID, SLURMD_NODENAME, SLURM_JOB_PARTITION, ...
#
# It only writes one line per call to the hook log: the RUNNING report goes to the supervisor
# from the controller prolog (prolog-slurmctld-reporter.sh), once per job rather than once per
# node. It must always exit 0: a failing Prolog drains the node and requeues the job.
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
        printf '%s hook=prolog job=%s user=%s node=%s partition=%s\n' \
            "$(date +%s)" "$SLURM_JOB_ID" "$SLURM_JOB_USER" "$SLURMD_NODENAME" \
            "$SLURM_JOB_PARTITION" >>"$GRID_HOOK_LOG_DIR/hooks.log"
} 2>/dev/null
exit 0
