"""Latency over time, one panel per reload-under-load run, drawn as plain SVG by hand.

Per 100 ms bucket of request start times: the median and the maximum latency of the answered
requests (log scale), failed requests as red bars at the top, each reload trigger as a blue line.
"""
import math
from xml.sax.saxutils import escape

BUCKET_US = 100_000
WIDTH, PANEL, LEFT, RIGHT, TOP, GAP = 960, 150, 60, 20, 40, 56
Y_MIN_MS, Y_MAX_MS = 0.05, 5000.0


def read_records(path, origin_us):
    """Buckets of (latencies of ok requests, failures) by request start, from the load tool's
    record file: `start_us class latency_us outcome` per line."""
    buckets = {}
    try:
        with open(path) as f:
            for line in f:
                start, _kind, latency, outcome = line.split()
                index = (int(start) - origin_us) // BUCKET_US
                bucket = buckets.setdefault(index, ([], [0]))
                if outcome == "o":
                    bucket[0].append(int(latency) / 1000)
                else:
                    bucket[1][0] += 1
    except OSError:
        pass
    return buckets


def y_of(ms, top):
    ms = min(max(ms, Y_MIN_MS), Y_MAX_MS)
    span = math.log10(Y_MAX_MS) - math.log10(Y_MIN_MS)
    return top + PANEL * (1 - (math.log10(ms) - math.log10(Y_MIN_MS)) / span)


def panel(run, top):
    origin = run["load_started_us"]
    buckets = read_records(run["records"], origin)
    reloads = [(r["trigger_mono_us"] - origin) / 1e6 for r in run["reloads"]]
    seconds = max([run["load"]["seconds"]] + [(i + 1) * BUCKET_US / 1e6 for i in buckets] + reloads)
    plot = WIDTH - LEFT - RIGHT

    def x_of(t):
        return LEFT + plot * max(0.0, t) / seconds

    load = run["load"]
    failed = sum(load[c][k] for c in ("close", "keepalive")
                 for k in ("refused", "reset", "timeout", "empty", "short", "status", "other"))
    sent = load["close"]["sent"] + load["keepalive"]["sent"]
    title = (f"{run['system']} with {run['worker']}: {len(run['reloads'])} reloads, "
             f"{failed} of {sent} requests failed")
    parts = [f'<text x="{LEFT}" y="{top - 8}" class="title">{escape(title)}</text>',
             f'<rect x="{LEFT}" y="{top}" width="{plot}" height="{PANEL}" class="frame"/>']
    for ms in (0.1, 1, 10, 100, 1000):
        y = y_of(ms, top)
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        label = f"{ms:g} ms" if ms < 1000 else "1 s"
        parts.append(f'<text x="{LEFT - 4}" y="{y + 3:.1f}" class="axis" text-anchor="end">{label}</text>')
    step = max(1, round(seconds / 10))
    for t in range(0, int(seconds) + 1, step):
        parts.append(f'<text x="{x_of(t):.1f}" y="{top + PANEL + 12}" class="axis" text-anchor="middle">{t} s</text>')
    for t in reloads:
        parts.append(f'<line x1="{x_of(t):.1f}" x2="{x_of(t):.1f}" y1="{top}" y2="{top + PANEL}" class="reload"/>')
    medians, maxima = [], []
    for index in sorted(buckets):
        latencies, failures = buckets[index]
        x = x_of((index + 0.5) * BUCKET_US / 1e6)
        if latencies:
            latencies.sort()
            medians.append(f"{x:.1f},{y_of(latencies[len(latencies) // 2], top):.1f}")
            maxima.append(f"{x:.1f},{y_of(latencies[-1], top):.1f}")
        if failures[0]:
            height = min(PANEL, 6 + 4 * math.log2(failures[0]))
            parts.append(f'<rect x="{x - 1.5:.1f}" y="{top}" width="3" height="{height:.1f}" class="fail">'
                         f'<title>{failures[0]} failed</title></rect>')
    if maxima:
        parts.append(f'<polyline points="{" ".join(maxima)}" class="max"/>')
    if medians:
        parts.append(f'<polyline points="{" ".join(medians)}" class="median"/>')
    return parts


def write(runs, path):
    height = TOP + len(runs) * (PANEL + GAP) + 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
             f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif">',
             "<style>.title{font-size:13px;font-weight:bold}.axis{font-size:10px;fill:#555}"
             ".frame{fill:#fff;stroke:#999}.grid{stroke:#e4e4e4}.reload{stroke:#3b7dd8;stroke-opacity:.35}"
             ".median{fill:none;stroke:#222;stroke-width:1.2}.max{fill:none;stroke:#e39a2d;stroke-width:1}"
             ".fail{fill:#d62728}</style>",
             f'<rect width="{WIDTH}" height="{height}" fill="#fafafa"/>',
             f'<text x="{LEFT}" y="18" font-size="14">Request latency during reloads (per 100 ms: '
             f'<tspan fill="#222">median</tspan>, <tspan fill="#e39a2d">max</tspan>; '
             f'<tspan fill="#3b7dd8">reload</tspan>; <tspan fill="#d62728">failed requests</tspan>)</text>']
    for index, run in enumerate(runs):
        parts += panel(run, TOP + 12 + index * (PANEL + GAP))
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")
