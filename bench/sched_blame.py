#!/usr/bin/env python3
"""Who kept the checks waiting: reads `perf sched timehist` output (stdin) and prints, for the
threads that serve and send the checks (the server's HTTP workers, `actix-rt*`, and `wrk`), how
many times one waited for its core for a threshold or longer after being woken, and which
threads ran on that core while it waited.

Each wait counts on its own: a run during which two checks' threads waited counts twice. The
time printed and the shares are those of the waiting time summed over the waiting threads (the
part of it during which some other thread ran; the rest, if any, is time no run was recorded).

Used by bench/purge.sh with PURGE_SCHED=1. A thread's wait is counted on the core where it then
ran (a thread moved between cores while it waited is counted on the last one). Thread names are
grouped: the digits and `[tid/pid]` dropped, the server's HTTP workers as `actix`, RabbitMQ's
Erlang threads (`1_scheduler`, `0_poller`, ...) as `broker`.

usage: perf sched timehist -i FILE | sched_blame.py [THRESHOLD_MS] [TOP]
"""

import bisect
import collections
import re
import sys

THRESHOLD = float(sys.argv[1]) / 1000 if len(sys.argv) > 1 else 0.0002
TOP = int(sys.argv[2]) if len(sys.argv) > 2 else 6
LINE = re.compile(
    r"^\s*(\d+\.\d+)\s+\[(\d+)\]\s+(.*?)\s+(\d+\.\d+)\s+(\d+\.\d+)\s+(\d+\.\d+)\s*$"
)


def group(task):
    name = re.sub(r"\[\d+(/\d+)?\]$", "", task).strip()
    if name.startswith("actix-rt"):
        return "actix"
    if re.match(r"^\d+_", name) or name in ("beam.smp", "erts_sched"):
        return "broker"
    return re.sub(r"[\d:]+$", "", name) or name


def main():
    runs = collections.defaultdict(list)  # cpu -> [(end, start, group)]
    waits = []  # (cpu, woken, start)
    for line in sys.stdin:
        m = LINE.match(line)
        if not m:
            continue
        end, cpu, task = float(m.group(1)), int(m.group(2)), m.group(3)
        delay, run = float(m.group(5)) / 1000, float(m.group(6)) / 1000
        start = end - run
        name = group(task)
        runs[cpu].append((end, start, name))
        if name in ("actix", "wrk") and delay >= THRESHOLD:
            waits.append((cpu, start - delay, start))
    ends = {}
    for cpu in runs:
        runs[cpu].sort()
        ends[cpu] = [e[0] for e in runs[cpu]]
    blame = collections.Counter()
    for cpu, woken, start in waits:
        events = runs[cpu]
        # Runs that ended after the wake-up, up to the first that ends after the wait.
        for i in range(bisect.bisect_right(ends[cpu], woken), len(events)):
            end, begin, name = events[i]
            overlap = min(end, start) - max(begin, woken)
            if overlap > 0:
                blame[name] += overlap
            if end >= start:
                break
    total = sum(blame.values())
    shares = ", ".join(
        f"{name} {100 * value / total:.0f} %" for name, value in blame.most_common(TOP)
    ) if total > 0 else "-"
    print(f"{len(waits)} waits of {THRESHOLD * 1000:.1f} ms or more, {total * 1000:.0f} ms of them "
          f"behind other runs (summed over the waiting threads); on their core meanwhile: "
          f"{shares}")


if __name__ == "__main__":
    main()
