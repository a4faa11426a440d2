"""What --static-swift-stdlib changes: binary size, resident memory, start times."""
import os
import subprocess
import time

from . import phases, procs, stats


def check_ms(baton, config, runs=20):
    """Wall time of `baton check` (a whole CLI process: load, parse, exit), median of `runs`."""
    times = []
    for _ in range(runs):
        t = time.monotonic()
        subprocess.run([baton, "check", "--config", config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=30)
        times.append((time.monotonic() - t) * 1000)
    return stats.percentile(times, 0.5)


def master_start(ctx, bin_dir, worker, runs=5):
    """exec of `baton run` -> its first worker answers on the port (median ms), and the master's
    memory one second later."""
    times, memory = [], None
    for index in range(runs):
        port = procs.free_port()
        server = procs.Baton(bin_dir, ctx.work, f"start-{os.path.basename(os.path.dirname(bin_dir))}-{index}",
                             [("http", f"tcp://127.0.0.1:{port}")], [worker])
        t = time.monotonic()
        try:
            server.start(step=0.001)
            procs.wait_until(lambda: procs.answers(port, timeout=0.2), 30, "the first answer", step=0.001)
            times.append((time.monotonic() - t) * 1000)
            time.sleep(1.0)
            memory = procs.status_kb(server.pid)
        finally:
            server.stop()
    return stats.percentile(times, 0.5), memory


def compare(ctx, static_bin):
    result = {}
    for variant, bin_dir in (("dynamic", ctx.bin_dir), ("static", static_bin)):
        baton = os.path.join(bin_dir, "baton")
        worker = os.path.join(bin_dir, "baton-test-worker")
        probe = procs.Baton(bin_dir, ctx.work, f"check-{variant}", [("http", "tcp://127.0.0.1:0")], [worker])
        start_ms, memory = master_start(ctx, bin_dir, worker)
        timing = phases.baton_timing(ctx, f"timing-1-{variant}", 1, ctx.args.timing_reloads, command=[worker],
                                     bin_dir=bin_dir)
        result[variant] = {
            "baton_bytes": os.path.getsize(baton), "worker_bytes": os.path.getsize(worker),
            "master_bytes": os.path.getsize(os.path.join(bin_dir, "baton-master")),
            "check_ms": check_ms(baton, probe.config), "start_ms": start_ms, "memory": memory,
            "serving": timing["timing"]["serving"], "old_exited": timing["timing"]["old_exited"],
            "cpu_per_reload_ms": timing["cpu_per_reload_ms"]}
    return result
