"""Writes a bench/scale.sh run's output into docs/benchmarks.md, between the "bench/scale.sh
results" markers (a section at the end the first time), with the date, the machine, the SCALE,
the build and the commit.

    python3 bench/scale_report.py OUTPUT_FILE SCALE BUILD
"""
import datetime
import os
import re
import subprocess
import sys

BEGIN = "<!-- bench/scale.sh results: begin (written by the script; do not edit by hand) -->"
END = "<!-- bench/scale.sh results: end -->"


def git(*args):
    return subprocess.run(["git", *args], capture_output=True, text=True).stdout.strip()


def main():
    report, scale, build = sys.argv[1:4]
    text = open(report, errors="replace").read().rstrip("\n").replace("```", "'''")
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), "unknown CPU")
    mem_kb = next((int(line.split()[1]) for line in open("/proc/meminfo")
                   if line.startswith("MemTotal")), 0)
    dirty = " (with local changes)" if git("status", "--porcelain", "--untracked-files=no") else ""
    now = datetime.datetime.now(datetime.timezone.utc)
    section = "\n".join([
        BEGIN,
        f"Last run: {now:%Y-%m-%d %H:%M} UTC, `SCALE={scale}`, {build} build, commit "
        f"{git('rev-parse', '--short', 'HEAD')}{dirty}; machine: {os.cpu_count()} cores "
        f"({cpu}), {mem_kb // 1048576} GiB of memory; load average "
        f"{open('/proc/loadavg').read().split()[0]} at the end.",
        "",
        "```text",
        text,
        "```",
        END,
    ])
    path = "docs/benchmarks.md"
    doc = open(path).read()
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if pattern.search(doc):
        doc = pattern.sub(lambda _: section, doc)
    else:
        doc = doc.rstrip("\n") + "\n\n## `bench/scale.sh`: the last run\n\n" + section + "\n"
    with open(path, "w") as f:
        f.write(doc)
    print(f"scale: results written into {path}")


if __name__ == "__main__":
    main()
