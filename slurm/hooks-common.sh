# shellcheck shell=sh
# What the grid's SLURM hooks share. Each hook in this folder sources it first, from its own
# folder (`. "${0%/*}/hooks-common.sh"`), so it is installed next to them (it needs no exec bit).
# It only sets things up and defines functions: it never exits, and nothing in it fails a hook.
#
# SLURM sets no PATH for its hooks, so it is set here. Settings are read (and exported, so that
# `grid-supervisor report` sees them) from ${GRID_HOOKS_ENV:-/etc/slurm/grid-hooks.env} if present:
#   GRID_HOOK_LOG_DIR     folder of hooks.log (default /var/log/grid-supervisor)
#   GRID_SUPERVISOR_BIN   the grid-supervisor executable (default: on PATH, else this checkout's
#                         .venv/bin/grid-supervisor)
#   GRID_REPORT_*         the reporter's settings (see `grid-supervisor report --help`): SPOOL_DIR,
#                         TLS, CA_FILE, SECRET_FILE, TIMEOUT, SCONTROL, SUPERVISORS
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
GRID_HOOK_LOG_DIR=/var/log/grid-supervisor
GRID_SUPERVISOR_BIN=
grid_hooks_settings=${GRID_HOOKS_ENV:-/etc/slurm/grid-hooks.env}
set -a
# shellcheck disable=SC1090
[ -r "$grid_hooks_settings" ] && . "$grid_hooks_settings"
set +a
grid_hooks_log="$GRID_HOOK_LOG_DIR/hooks.log"

# hook_log FORMAT [ARG...]: append "<unix time> FORMAT" (printf-style, ARGs filling FORMAT's %s)
# as one line to the hook log. Every unprintable byte of the ARGs (a newline in a job name, say,
# which would start a forged line) is written as '?'. A log that cannot be written is passed over.
hook_log() {
    hook_log_format=$1
    shift
    {
        mkdir -p "$GRID_HOOK_LOG_DIR" &&
            hook_log_line=$(printf "%s $hook_log_format" "$(date +%s)" "$@" |
                LC_ALL=C tr -c '[:print:]' '?') &&
            printf '%s\n' "$hook_log_line" >>"$grid_hooks_log"
    } 2>/dev/null
    return 0
}

# hook_report KIND JOB: run `grid-supervisor report KIND` (prolog or jobcomp; the job is in the
# environment SLURM gave the hook), its output going to the hook log, or to /dev/null when that
# cannot be written (the report matters more than its log line). A reporter that cannot run is
# logged with the SLURM job id JOB, never returned as a failure.
hook_report() {
    hook_report_out=$grid_hooks_log
    [ -w "$hook_report_out" ] || hook_report_out=/dev/null
    hook_report_bin=${GRID_SUPERVISOR_BIN:-$(command -v grid-supervisor)}
    [ -n "$hook_report_bin" ] || hook_report_bin="$(dirname "$0")/../.venv/bin/grid-supervisor"
    "$hook_report_bin" report "$1" </dev/null >>"$hook_report_out" 2>&1 ||
        printf '%s report=%s job=%s outcome=error reason=%s failed\n' \
            "$(date +%s)" "$1" "$2" "$hook_report_bin" >>"$hook_report_out" 2>/dev/null
    return 0
}
