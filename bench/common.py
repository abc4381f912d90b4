"""What every benchmark shares: its command line, one measurement, the median of runs, the table and the JSON.

A measurement is wall seconds, client CPU seconds (user + system of this process and of the child processes it
waited for) and peak resident memory: this process's high-water mark, reset before the measurement, and the
largest child process's. On a busy machine wall time also counts waiting for a core or a disk; CPU time is the
steadier figure. A benchmark runs the contenders side by side in one run and reports their ratios.
"""

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass, fields
from importlib import metadata
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
PACKAGES = ("kubefab", "cryptography", "fabric", "invoke", "pyyaml")


@dataclass(frozen=True)
class Sample:
    """One measurement, or the median of several (field by field)."""

    wall_s: float
    cpu_s: float
    peak_rss_mb: float          # this process, from the start of the measurement
    child_peak_rss_mb: float    # the largest child process this process has waited for (0: none)


def parser(doc, runs=3):
    """The options every benchmark takes (--runs, --smoke, --out); a benchmark adds its own."""
    args = argparse.ArgumentParser(description=doc.splitlines()[0])
    args.add_argument("--runs", type=int, default=runs, help=f"runs per measurement, median reported (default {runs})")
    args.add_argument("--smoke", action="store_true", help="small sizes, one run: checks the benchmark works")
    args.add_argument("--out", type=Path, default=RESULTS, help=f"directory for the JSON (default {RESULTS})")
    return args


def options(args, argv=None, smoke=()):
    """Parse `argv`; with --smoke, one run and the values of `smoke` ((dest, value) pairs) whatever was given."""
    parsed = args.parse_args(argv)
    parsed.load_at_start = [round(x, 2) for x in os.getloadavg()]
    if parsed.runs < 1:
        args.error(f"--runs {parsed.runs}: give at least 1")
    if parsed.smoke:
        parsed.runs = 1
        for dest, value in smoke:
            setattr(parsed, dest, value)
    return parsed


def measure(fn):
    """(Sample, fn's return value) for one call of `fn`."""
    peak_reset = _reset_peak_rss()
    before_self, before_children = _usage()
    start = time.perf_counter()
    value = fn()
    wall = time.perf_counter() - start
    after_self, after_children = _usage()
    cpu = _cpu(after_self) - _cpu(before_self) + _cpu(after_children) - _cpu(before_children)
    peak = _peak_rss_kb() if peak_reset else after_self.ru_maxrss
    return Sample(wall_s=wall, cpu_s=cpu, peak_rss_mb=peak / 1024,
                  child_peak_rss_mb=after_children.ru_maxrss / 1024), value


def median(samples):
    """The field-by-field median of `samples`."""
    samples = list(samples)
    return Sample(**{f.name: statistics.median(getattr(s, f.name) for s in samples) for f in fields(Sample)})


def ratio(a, b):
    """a / b, or None when b is zero."""
    return a / b if b else None


def _usage():
    return resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)


def _cpu(usage):
    return usage.ru_utime + usage.ru_stime


def _reset_peak_rss():
    # Linux (since 4.0): writing 5 to clear_refs sets VmHWM back to the current RSS
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _peak_rss_kb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def machine():
    """The facts a reader needs to compare numbers: cores, memory, load, Python, library and tool versions."""
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    return {
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_mb": int(meminfo["MemTotal"].split()[0]) // 1024,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "versions": _versions(),
    }


def _versions():
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:  # kubefab's PKI runs on the OpenSSL built into the cryptography wheel, not the system's
        from cryptography.hazmat.backends.openssl import backend
        versions["openssl-in-cryptography"] = backend.openssl_version_text()
    except ImportError:
        versions["openssl-in-cryptography"] = None
    if shutil.which("openssl"):
        versions["openssl-cli"] = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    return versions


def table(headers, rows):
    """A right-aligned console table; floats with 2 decimals, None as '-'."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = [" ".join(h.rjust(w) for h, w in zip(headers, widths))]
    lines += [" ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def _cell(value):
    if value is None:
        return "-"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def write(name, opts, params, rows, notes=()):
    """Write bench results as `<opts.out>/<name>.json` and return its path."""
    doc = {
        "benchmark": name,
        "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "runs": opts.runs,
        "smoke": opts.smoke,
        "machine": {**machine(), "load_average_at_start": opts.load_at_start},
        "params": params,
        "rows": [_plain(r) for r in rows],
        "notes": list(notes),
    }
    opts.out.mkdir(parents=True, exist_ok=True)
    path = opts.out / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def _plain(value):
    if isinstance(value, Sample):
        return {k: round(v, 4) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, float):
        return round(value, 4)
    return value
