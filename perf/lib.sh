# Shared by the perf/ scripts (sourced, not run).

# stop_pids PID...: SIGTERM every process, wait up to STOP_TRIES x 0.1 s each (default 5 s),
# then SIGKILL and reap.
# Each script keeps the pids it started in PIDS and calls this from its EXIT trap.
stop_pids() {
    local pid
    for pid in "$@"; do [[ -n "$pid" ]] && kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "$@"; do
        [[ -n "$pid" ]] || continue
        for _ in $(seq "${STOP_TRIES:-50}"); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}
