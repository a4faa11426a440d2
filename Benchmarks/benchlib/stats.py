"""Small statistics and the master's log timestamps."""
import calendar
import re
import time


def percentile(values, p):
    """Nearest-rank percentile of `values` (p in 0...1); None when empty."""
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    return values[min(len(values) - 1, max(0, round(p * (len(values) - 1))))]


def summary(values):
    """median, p90, max and count of the non-negative values (-1 means "not seen")."""
    seen = [v for v in values if v is not None and v >= 0]
    return {"n": len(seen), "median": percentile(seen, 0.5), "p90": percentile(seen, 0.9),
            "max": max(seen) if seen else None, "min": min(seen) if seen else None}


def mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


LOG_LINE = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})Z \w+ (.*)$")


def log_events(text):
    """(epoch milliseconds, message) for each timestamped line of a master log."""
    events = []
    for line in text.splitlines():
        m = LOG_LINE.match(line)
        if not m:
            continue
        y, mo, d, h, mi, s, ms = (int(x) for x in m.groups()[:7])
        epoch = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
        events.append((epoch * 1000 + ms, m.group(8)))
    return events


GEN = re.compile(r"gen=(\d+)")


def master_share(log_text, reloads, first_reload_generation):
    """The master's own part of each reload, from its log (millisecond timestamps):
    trigger -> first spawn of the new generation, and last READY -> drain order to the old one.
    The trigger's real time is cut to whole milliseconds like the log's, so the mean of many
    differences is unbiased even though each one is quantised to 1 ms."""
    first_spawn, last_ready, drain_order = {}, {}, {}
    for at, message in log_events(log_text):
        g = GEN.search(message)
        if not g:
            continue
        gen = int(g.group(1))
        if message.endswith(" spawned") and gen not in first_spawn:
            first_spawn[gen] = at
        elif " ready in " in message and "serving" not in message:
            last_ready[gen] = at
        elif " draining (replaced by gen=" in message:
            new = int(message.split("replaced by gen=")[1].split(")")[0])
            drain_order.setdefault(new, at)
    to_spawn, to_drain = [], []
    for index, reload in enumerate(reloads):
        gen = first_reload_generation + index
        trigger_ms = reload["trigger_realtime_us"] // 1000
        if gen in first_spawn:
            to_spawn.append(first_spawn[gen] - trigger_ms)
        if gen in last_ready and gen in drain_order:
            to_drain.append(drain_order[gen] - last_ready[gen])
    return {"trigger_to_first_spawn_ms": mean(to_spawn), "last_ready_to_drain_ms": mean(to_drain),
            "n": min(len(to_spawn), len(to_drain))}


def now_text():
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
