#!/bin/sh
# Prolog reporter: slurmd runs this (Prolog=) as root on every node allocated to a job, before
# the job starts there. SLURM sets no PATH for prologs. The job is described by SLURM_JOB_ID,
# SLURM_JOB_USER, SLURM_JOB_UID, SLURMD_NODENAME, SLURM_JOB_PARTITION, ...
#
# It only writes one line per call to the hook log: the RUNNING report goes to the supervisor
# from the controller prolog (prolog-slurmctld-reporter.sh), once per job rather than once per
# node. It must always exit 0: a failing Prolog drains the node and requeues the job.
#
# PATH, the settings (GRID_HOOK_LOG_DIR in /etc/slurm/grid-hooks.env) and the log step are in
# hooks-common.sh, which must be installed next to this script.
common="${0%/*}/hooks-common.sh" # sourced before PATH is set: no dirname here
[ -r "$common" ] || { echo "grid hook: $common is missing; nothing logged" >&2; exit 0; }
# shellcheck source=hooks-common.sh
. "$common"
hook_log 'hook=prolog job=%s user=%s node=%s partition=%s' \
    "$SLURM_JOB_ID" "$SLURM_JOB_USER" "$SLURMD_NODENAME" "$SLURM_JOB_PARTITION"
exit 0
