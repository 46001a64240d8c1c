#!/bin/sh
# Controller prolog reporter: slurmctld runs this (PrologSlurmctld=) as root once per job, when
# the job has been allocated its nodes and is about to start. SLURM sets no PATH for it. The job
# is described by SLURM_JOB_ID, SLURM_JOB_NAME, SLURM_JOB_USER, SLURM_JOB_NODELIST, ...
#
# For now it only writes one line per call to the hook log; the RUNNING report to the supervisor
# comes in a later issue. It must always exit 0: a failing PrologSlurmctld requeues or fails the
# job.
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
        printf '%s hook=prolog-slurmctld job=%s user=%s name=%s nodes=%s\n' \
            "$(date +%s)" "$SLURM_JOB_ID" "$SLURM_JOB_USER" "$SLURM_JOB_NAME" \
            "$SLURM_JOB_NODELIST" >>"$GRID_HOOK_LOG_DIR/hooks.log"
} 2>/dev/null
exit 0
