#!/usr/bin/env python3
"""baton's benchmark suite (run it with `make bench`; `bench/run.sh --help` lists the knobs).

Measures, in one run on a release build, with traffic on 127.0.0.1 only:
  1. reload under load: baton vs the same worker restarted naively vs Server::Starter;
  2. reload timing for 1, 8 and 64 workers, and the baselines';
  3. the master's footprint after start and after many reloads, and while idle;
  4. scale: 1,000 listeners in both handoff modes, 128 workers;
  5. what --static-swift-stdlib changes (when a static build is given).
Prints a table with every figure beside its target and baselines, writes docs/BENCHMARKS.md and
docs/benchmarks-latency.svg, and keeps the raw results in the work directory.
"""
import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchlib import phases, report, staticlib, stats, svg  # noqa: E402


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", help="release build directory (baton, baton-test-worker)")
    parser.add_argument("--load-tool", help="the compiled baton-bench-load")
    parser.add_argument("--static-bin", help="a --static-swift-stdlib release build directory, to compare")
    parser.add_argument("--reloads", type=int, default=200, help="reloads under load for baton and naive")
    parser.add_argument("--ss-reloads", type=int, default=20, help="reloads under load for Server::Starter")
    parser.add_argument("--timing-reloads", type=int, default=40, help="reloads per timing run (1 worker)")
    parser.add_argument("--footprint-reloads", type=int, default=10000)
    parser.add_argument("--footprint-seconds", type=float, default=420, help="bound on the footprint reloads")
    parser.add_argument("--scale-reloads", type=int, default=5)
    parser.add_argument("--idle-seconds", type=int, default=10)
    parser.add_argument("--rate", type=float, default=1000, help="connect-per-request requests per second")
    parser.add_argument("--keepalive", type=int, default=32, help="keep-alive connections")
    parser.add_argument("--keepalive-interval-ms", type=int, default=50)
    parser.add_argument("--gap-ms", type=int, default=100, help="pause after each reload has ended")
    parser.add_argument("--only", default="load,timing,footprint,scale,static",
                        help="comma-separated phases to run")
    parser.add_argument("--docs", default=None, help="docs directory to write (default: the repository's)")
    parser.add_argument("--work", default=None, help="work directory (default: a fresh temporary one)")
    parser.add_argument("--from-results", help="only write the report again from a results.json (and its records)")
    return parser.parse_args()


def conditions(bin_dir):
    def run(command):
        import subprocess
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "?"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    dirty = run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"])
    return {"date": stats.now_text(), "kernel": os.uname().release, "cores": os.cpu_count(),
            "swift": run(["swift", "--version"]).splitlines()[0] if run(["swift", "--version"]) else "?",
            "commit": run(["git", "-C", root, "rev-parse", "--short", "HEAD"]) + (" (with local changes)" if dirty else ""),
            "load_before": os.getloadavg(), "bin": bin_dir}


def main():
    args = parse_arguments()
    if args.from_results:
        with open(args.from_results) as f:
            return write_report(json.load(f), args, keep_records=True)
    if not args.bin or not args.load_tool:
        sys.exit("bench.py: --bin and --load-tool are required (bench/run.sh passes them)")
    only = set(args.only.split(","))
    work = args.work or tempfile.mkdtemp(prefix="baton-bench.")
    os.makedirs(work, exist_ok=True)
    ctx = phases.Context(os.path.abspath(args.bin), os.path.abspath(args.load_tool), work, args)
    results = {"conditions": conditions(ctx.bin_dir), "settings": vars(args)}
    started = time.monotonic()

    def step(name, function):
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        t = time.monotonic()
        value = function()
        print(f"bench: {name} done in {time.monotonic() - t:.0f} s", file=sys.stderr, flush=True)
        return value

    if "load" in only:
        results["under_load"] = []
        for worker in ctx.worker_kinds():
            for system, count in (("baton", args.reloads), ("naive", args.reloads), ("server-starter", args.ss_reloads)):
                results["under_load"].append(step(f"reload under load: {system}, {worker[0]}, {count} reloads",
                                                  lambda: phases.under_load(ctx, system, worker, count)))
    if "timing" in only:
        counts = {1: args.timing_reloads, 8: max(5, args.timing_reloads // 2), 64: max(3, args.timing_reloads // 4)}
        results["timing"] = [step(f"reload timing: {n} workers", lambda: phases.baton_timing(ctx, f"timing-{n}", n, c))
                             for n, c in counts.items()]
        results["baseline_timing"] = [
            step("reload timing: naive restart", lambda: phases.baseline_timing(ctx, "naive", args.timing_reloads)),
            step("reload timing: Server::Starter",
                 lambda: phases.baseline_timing(ctx, "server-starter", max(3, args.ss_reloads // 2)))]
    if "footprint" in only:
        # The master as `make release` builds it (--static-swift-stdlib) when that build is given.
        build = "static" if args.static_bin else "dynamic"
        bin_dir = os.path.abspath(args.static_bin) if args.static_bin else None
        results["footprint"] = step(f"footprint ({build} build): up to {args.footprint_reloads} reloads",
                                    lambda: phases.footprint(ctx, args.footprint_reloads, args.footprint_seconds,
                                                             bin_dir=bin_dir))
        results["footprint"]["build"] = build
    if "scale" in only:
        results["scale"] = [step("scale: 1,000 listeners, listen-fds", lambda: phases.scale_listeners(ctx, "listen-fds", 1000)),
                            step("scale: 1,000 listeners, channel", lambda: phases.scale_listeners(ctx, "channel", 1000)),
                            step("scale: 128 workers", lambda: phases.scale_workers(ctx, 128))]
    if "static" in only and args.static_bin:
        results["static"] = step("--static-swift-stdlib", lambda: staticlib.compare(ctx, os.path.abspath(args.static_bin)))
    results["conditions"]["load_after"] = os.getloadavg()
    results["conditions"]["minutes"] = (time.monotonic() - started) / 60

    with open(os.path.join(work, "results.json"), "w") as f:
        json.dump(results, f, indent=1, default=str)
    print(f"bench: raw results in {work}/results.json", file=sys.stderr)
    return write_report(results, args, keep_records=bool(args.work), work=work)


def write_report(results, args, keep_records, work=None):
    docs = args.docs or os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")
    os.makedirs(docs, exist_ok=True)
    runs = results.get("under_load") or []
    if runs and all(os.path.exists(r["records"]) for r in runs):
        svg.write(runs, os.path.join(docs, "benchmarks-latency.svg"))
    elif runs:
        print("bench: the request records are gone: benchmarks-latency.svg left as it was", file=sys.stderr)
    table, checks = report.table(results)
    print(table)
    with open(os.path.join(docs, "BENCHMARKS.md"), "w") as f:
        f.write(report.markdown(results, table))
    print(f"\nwrote {os.path.join(docs, 'BENCHMARKS.md')}", file=sys.stderr)
    if work and not keep_records:
        # Keep the results and logs; drop the bulky per-request records.
        for name in os.listdir(work):
            if name.endswith(".records"):
                os.remove(os.path.join(work, name))
    failed = [name for name, ok in checks if ok is False]
    if failed:
        print("targets missed: " + "; ".join(failed), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
