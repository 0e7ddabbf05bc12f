# shellcheck shell=bash
# timed NAME LIMIT CMD...: runs CMD with a time limit (seconds), output in $L/NAME.txt, its
# exit status (rc=timeout when the limit killed it), wall time, the peak resident memory of
# its process tree (its largest process) and the tree's user and system CPU seconds
# appended as the file's last line. Sourced by the device scripts
# (device-acceptance.sh, device-throughput.sh, device-torch-acceptance.sh); $L must be set.
timed() { run_limited "$@"; }

# run_limited NAME LIMIT CMD...: timed's runner (device-torch-acceptance.sh wraps it to cut
# each step's limit to the time left). A command that cannot start gets "rc=start-failed".
run_limited() {
  local name=$1 lim=$2
  shift 2
  python3 - "$L/$name.txt" "$lim" "$@" <<'PY'
import resource, subprocess, sys, time
out, lim, cmd = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
t0 = time.time()
with open(out, "w") as f:
    try:
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
    except OSError as e:
        f.write(f"cannot start {cmd[0]}: {e}\n")
        f.write("rc=start-failed wall=0.0s\n")
        sys.exit(0)
    try:
        rc = p.wait(timeout=max(lim, 1))
    except subprocess.TimeoutExpired:
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        rc = "timeout"
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    f.write(f"rc={rc} wall={time.time() - t0:.1f}s maxrss_kb={ru.ru_maxrss} user={ru.ru_utime:.1f}s sys={ru.ru_stime:.1f}s\n")
PY
}
