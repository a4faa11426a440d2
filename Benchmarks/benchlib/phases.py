"""The measurements: reload under load, reload timing, master footprint, scale.

Each returns a plain dict (JSON-ready). Every loop is bounded in count and in time.
"""
import json
import os
import select
import signal
import subprocess
import time

from . import procs, stats


class Context:
    """Paths and knobs shared by the phases."""

    def __init__(self, bin_dir, load_tool, work, args):
        self.bin_dir = bin_dir
        self.load_tool = load_tool
        self.work = work
        self.args = args
        self.test_worker = os.path.join(bin_dir, "baton-test-worker")

    def worker_kinds(self):
        """The workers measured under load: the test worker, and the SwiftNIO example if built."""
        kinds = [("test-worker", [self.test_worker], lambda port: [self.test_worker, "--listen", f"127.0.0.1:{port}"])]
        nio = os.path.join(self.bin_dir, "swift-nio-server")
        if os.access(nio, os.X_OK):
            kinds.append(("swift-nio-server", [nio], lambda port: [nio, f"tcp://127.0.0.1:{port}"]))
        return kinds


def run_timing(ctx, arguments, count, bound_s, on_line=None, started=None, finished=None, log_name="timing"):
    """Runs `baton-bench-load timing` and returns its per-reload objects. At `bound_s` it is told
    to stop (SIGINT) and the reloads done so far are kept. Its stderr (and a naive worker's
    output) goes to `<work>/<log_name>.log`."""
    command = [ctx.load_tool, "timing", "--count", str(count)] + arguments
    with open(os.path.join(ctx.work, log_name + ".log"), "w") as log:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    lines = []
    interrupted = False
    try:
        if started:
            started(process)
        deadline = time.monotonic() + bound_s
        fd = process.stdout.fileno()
        pending = b""
        while len(lines) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                if interrupted:
                    break
                process.send_signal(signal.SIGINT)
                interrupted = True
                deadline = time.monotonic() + 30
                continue
            readable, _, _ = select.select([fd], [], [], min(left, 1.0))
            if not readable:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            # Lines are read in bunches, a few times a second: this process waking for every
            # reload would take CPU from the master being measured on a 2-core machine.
            time.sleep(0.05)
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                reload = json.loads(line)
                lines.append(reload)
                if on_line:
                    on_line(reload)
        if finished:
            finished()
    finally:
        procs.stop_group(process, timeout=10, sig=signal.SIGINT)
    return lines, interrupted


def timing_summary(lines):
    return {key: stats.summary([line[key + "_us"] / 1000 if line[key + "_us"] >= 0 else -1 for line in lines])
            for key in ("first_new", "serving", "reply", "old_exited")} | {
        "count": len(lines), "failed": sum(1 for line in lines if line["ok"] == 0),
        "timed_out": sum(line["timed_out"] for line in lines)}


def load_command(ctx, port, records, bound_s):
    a = ctx.args
    return [ctx.load_tool, "load", "--port", str(port), "--rate", str(a.rate), "--keepalive", str(a.keepalive),
            "--keepalive-interval-ms", str(a.keepalive_interval_ms), "--timeout-ms", "3000",
            "--duration-ms", str(int(bound_s * 1000)), "--records", records]


def under_load(ctx, system, worker, reloads):
    """`reloads` reloads of `system` (baton, naive, server-starter) with `worker` while the load
    client runs; each reload waits for the old process(es) to exit, then `gap` ms."""
    name, command, standalone = worker
    label = f"load-{system}-{name}"
    port = procs.free_port()
    records = os.path.join(ctx.work, f"{label}.records")
    per_reload_bound = 12.0 if system == "server-starter" else 4.0
    bound_s = 30 + reloads * per_reload_bound
    server = None
    load = None
    try:
        gap = str(ctx.args.gap_ms)
        if system == "baton":
            server = procs.Baton(ctx.bin_dir, ctx.work, label, [("http", f"tcp://127.0.0.1:{port}")], command).start()
            arguments = ["--trigger", f"control:{server.control}", "--parent", str(server.pid), "--no-probe"]
        elif system == "server-starter":
            server = procs.ServerStarter(ctx.work, label, port, command).start()
            arguments = ["--trigger", f"hup:{server.pid}", "--parent", str(server.pid), "--no-probe"]
        else:
            arguments = ["--trigger", "naive"]
        arguments = ["--port", str(port), "--gap-ms", gap, "--timeout-ms", str(int(per_reload_bound * 1000)),
                     "--warmup-ms", "1500"] + arguments
        if system == "naive":
            arguments += ["--hold", "--"] + standalone(port)

        def start_load(_process):
            procs.wait_until(lambda: procs.answers(port), 30, f"{label} to serve")
            nonlocal load
            load = subprocess.Popen(load_command(ctx, port, records, bound_s + 60), stdout=subprocess.PIPE,
                                    stdin=subprocess.DEVNULL, text=True, start_new_session=True)
            load_started.append(time.monotonic_ns() // 1000)

        def stop_load():
            time.sleep(1.0)
            load.send_signal(signal.SIGINT)
            output, _ = load.communicate(timeout=30)
            results.append(json.loads(output))

        load_started, results = [], []
        lines, interrupted = run_timing(ctx, arguments, reloads, bound_s, started=start_load, finished=stop_load,
                                        log_name=label)
        result = results[0]
    finally:
        if load and load.poll() is None:
            procs.stop_group(load, sig=signal.SIGINT)
        if server:
            server.stop()
    return {"system": system, "worker": name, "reloads_requested": reloads, "reloads": lines,
            "interrupted": interrupted, "load": result, "records": records, "load_started_us": load_started[0],
            "timing": timing_summary(lines)}


def baton_timing(ctx, label, workers, count, command=None, bin_dir=None, listeners=None, handoff="listen-fds",
                 probe=True, bound_s=300):
    """Reload timing of baton on an idle machine: `count` reloads through the control socket,
    probing the port for the first answer of a new worker."""
    port = procs.free_port()
    listeners = listeners or [("http", f"tcp://127.0.0.1:{port}")]
    server = procs.Baton(bin_dir or ctx.bin_dir, ctx.work, label, listeners, command or [ctx.test_worker],
                         workers=workers, handoff=handoff)
    try:
        server.start(timeout=120)
        start_log = server.log()
        startup = [line for line in start_log.splitlines() if "gen=1 serving" in line]
        rss_start, fds_start = procs.status_kb(server.pid), procs.fd_count(server.pid)
        cpu0 = procs.cpu_ns(server.pid)
        arguments = ["--port", str(port), "--trigger", f"control:{server.control}", "--parent", str(server.pid),
                     "--gap-ms", str(ctx.args.gap_ms), "--timeout-ms", "60000", "--warmup-ms", "300"]
        if not probe:
            arguments.append("--no-probe")
        lines, interrupted = run_timing(ctx, arguments, count, bound_s)
        cpu1 = procs.cpu_ns(server.pid)
        time.sleep(0.3)
        result = {"label": label, "workers": workers, "handoff": handoff, "listeners": len(listeners),
                  "reloads": lines, "interrupted": interrupted, "timing": timing_summary(lines),
                  "master_share": stats.master_share(server.log(), lines, 2),
                  "cpu_per_reload_ms": (cpu1 - cpu0) / 1e6 / max(1, len(lines)),
                  "startup_line": startup[0] if startup else None,
                  "rss_start": rss_start, "fds_start": fds_start,
                  "rss_end": procs.status_kb(server.pid), "fds_end": procs.fd_count(server.pid)}
    finally:
        server.stop()
    return result


def baseline_timing(ctx, system, count):
    """Reload timing of the baselines on an idle machine, with the test worker."""
    port = procs.free_port()
    server = None
    memory = None
    try:
        arguments = ["--port", str(port), "--gap-ms", str(ctx.args.gap_ms), "--timeout-ms", "15000"]
        if system == "server-starter":
            server = procs.ServerStarter(ctx.work, f"timing-{system}", port, [ctx.test_worker]).start()
            time.sleep(1.0)
            memory = procs.status_kb(server.pid)
            arguments += ["--trigger", f"hup:{server.pid}", "--parent", str(server.pid), "--warmup-ms", "300"]
        else:
            arguments += ["--trigger", "naive", "--", ctx.test_worker, "--listen", f"127.0.0.1:{port}"]
        lines, interrupted = run_timing(ctx, arguments, count, 30 + count * 15, log_name=f"timing-{system}")
    finally:
        if server:
            server.stop()
    return {"system": system, "reloads": lines, "interrupted": interrupted, "timing": timing_summary(lines),
            "server_memory": memory}


# Reloads per CPU-time sample (the timing tool reads the master's CPU time after each reload).
# This machine shares its host: the same binary measures 30 % apart minute to minute, so the
# per-reload figure is the median of batch means, with their spread.
CPU_BATCH = 100


def cpu_batches(samples_ns):
    """Mean CPU milliseconds per reload of each batch between consecutive samples."""
    return [(b - a) / 1e6 / CPU_BATCH for a, b in zip(samples_ns, samples_ns[1:])]


def footprint(ctx, reloads, bound_s, label="footprint", command=None, bin_dir=None):
    """Master memory, fds and CPU after start and after many reloads; system calls while idle.
    `bin_dir` (default: the release build) holds the baton executables measured."""
    port = procs.free_port()
    server = procs.Baton(bin_dir or ctx.bin_dir, ctx.work, label, [("http", f"tcp://127.0.0.1:{port}")],
                         command or [ctx.test_worker])
    samples = []
    try:
        server.start()
        time.sleep(1.0)
        pid = server.pid
        after_start = procs.status_kb(pid) | {"fds": procs.fd_count(pid)}
        cpu0, ticks0 = procs.cpu_ns(pid), procs.cpu_ticks_ns(pid)
        started = time.monotonic()

        control_cpu = [cpu0]

        def sample(reload):
            # After 50 reloads: the soak's reference for anonymous memory (first allocations done).
            if (reload["i"] + 1) % 250 == 0 or reload["i"] + 1 == 50:
                samples.append({"reloads": reload["i"] + 1} | procs.status_kb(pid) | {"fds": procs.fd_count(pid)})
            if (reload["i"] + 1) % CPU_BATCH == 0 and reload.get("master_cpu_ns", -1) >= 0:
                control_cpu.append(reload["master_cpu_ns"])

        arguments = ["--port", str(port), "--trigger", f"control:{server.control}", "--parent", str(pid),
                     "--gap-ms", "0", "--timeout-ms", "30000", "--no-probe"]
        lines, interrupted = run_timing(ctx, arguments, reloads, bound_s, on_line=sample)
        elapsed = time.monotonic() - started
        cpu1, ticks1 = procs.cpu_ns(pid), procs.cpu_ticks_ns(pid)
        time.sleep(1.0)
        after = procs.status_kb(pid) | {"fds": procs.fd_count(pid)}
        idle = idle_syscalls(ctx, pid, ctx.args.idle_seconds)
        # The same reloads by SIGHUP, as nginx's figure is measured: no control connection, no
        # progress lines. Each waits for the old worker's exit, so none is coalesced.
        hup_count = min(2000, max(CPU_BATCH, reloads // 5))
        hup_cpu_samples = [procs.cpu_ns(pid)]

        def hup_sample(reload):
            if (reload["i"] + 1) % CPU_BATCH == 0 and reload.get("master_cpu_ns", -1) >= 0:
                hup_cpu_samples.append(reload["master_cpu_ns"])

        hup_lines, _ = run_timing(ctx, ["--port", str(port), "--trigger", f"hup:{pid}", "--parent", str(pid),
                                        "--gap-ms", "0", "--timeout-ms", "30000", "--no-probe"],
                                  hup_count, bound_s / 4, on_line=hup_sample, log_name="timing-hup")
        hup_cpu = (procs.cpu_ns(pid) - hup_cpu_samples[0]) / 1e6 / max(1, len(hup_lines))
        # Every old generation has exited by now (each reload waited for it): one worker remains.
        children = procs.children(pid)
        done = len(lines)
        share = stats.master_share(server.log(), lines, 2)
    finally:
        server.stop()
    return {"reloads_requested": reloads, "reloads_done": done, "bounded": interrupted, "seconds": elapsed,
            "after_start": after_start, "after_reloads": after, "samples": samples,
            "cpu_per_reload_ms": (cpu1 - cpu0) / 1e6 / max(1, done),
            "cpu_per_reload_hup_ms": hup_cpu, "hup_reloads": len(hup_lines),
            "cpu_batch": CPU_BATCH, "cpu_batches_hup_ms": cpu_batches(hup_cpu_samples),
            "cpu_batches_ms": cpu_batches(control_cpu),
            "cpu_per_reload_ticks_ms": (ticks1 - ticks0) / 1e6 / max(1, done),
            "failed_reloads": sum(1 for line in lines if line["ok"] != 1),
            "reload_round_trip": stats.summary([line["reply_us"] / 1000 for line in lines]), "idle": idle,
            "master_share": share, "children": len(children),
            "zombies": sum(1 for _, state in children if state == "Z")}


def idle_syscalls(ctx, pid, seconds):
    """System calls (strace -c, every thread) and context switches of `pid` over `seconds`."""
    out = os.path.join(ctx.work, "idle-strace.txt")
    switches0 = procs.context_switches(pid)
    subprocess.run(["timeout", "-s", "INT", str(seconds), "strace", "-c", "-f", "-p", str(pid), "-o", out],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    switches1 = procs.context_switches(pid)
    calls = 0
    try:
        with open(out) as f:
            for line in f:
                parts = line.split()
                if parts and parts[-1] == "total":
                    calls = int(parts[-2]) if parts[-2].isdigit() else int(parts[2])
    except (OSError, ValueError, IndexError):
        calls = None
    # strace's own attach/detach adds switches; a process asleep in epoll_wait adds none.
    return {"seconds": seconds, "syscalls": calls, "context_switches": switches1 - switches0}


def scale_listeners(ctx, handoff, count):
    listeners = [(f"l{i}", "tcp://127.0.0.1:0") for i in range(count)]
    return baton_timing(ctx, f"scale-{count}-listeners-{handoff}", 1, ctx.args.scale_reloads, listeners=listeners,
                        handoff=handoff, probe=False)


def scale_workers(ctx, workers):
    return baton_timing(ctx, f"scale-{workers}-workers", workers, ctx.args.scale_reloads, probe=True)
