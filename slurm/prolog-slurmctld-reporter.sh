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
# PATH, the settings (/etc/slurm/grid-hooks.env) and the log and report steps are in
# hooks-common.sh, which must be installed next to this script.
common="${0%/*}/hooks-common.sh" # sourced before PATH is set: no dirname here
[ -r "$common" ] || { echo "grid hook: $common is missing; nothing reported" >&2; exit 0; }
# shellcheck source=hooks-common.sh
. "$common"
hook_log 'hook=prolog-slurmctld job=%s user=%s name=%s nodes=%s' \
    "$SLURM_JOB_ID" "$SLURM_JOB_USER" "$SLURM_JOB_NAME" "$SLURM_JOB_NODELIST"
hook_report prolog "$SLURM_JOB_ID"
exit 0
