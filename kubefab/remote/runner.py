"""A bounded pool that runs one phase on many hosts and returns results as values.

One host's failure never stops the others of its phase; in a phase run one host or one batch at a
time, a batch that brings the failures over the phase's budget (0 unless given) stops the batches
after it. Ctrl-C starts no new host, lets the running ones
end, and raises Interrupted carrying every result so far.
"""

import concurrent.futures as cf
import logging
import threading
import time

from kubefab.steps import FAILED, SKIPPED, HostResult

log = logging.getLogger("kubefab")
# Threads mostly wait on the network; 32 reached the machine's CPU floor for 100 hosts on 2 cores
# (reference lab.md), and a few hundred hosts then take a few seconds per phase.
DEFAULT_WORKERS = 32
TICK = 0.2


class Interrupted(Exception):
    """Ctrl-C: the hosts that were running finished; `results` holds what every host did."""

    def __init__(self, results):
        super().__init__("interrupted")
        self.results = results


class Runner:
    """A pool of `workers` threads for the whole run; `progress(phase, done, failed, total, seconds)`.

    `seconds` holds each phase's wall seconds by name, summed over its calls (what the benchmarks read).
    """

    def __init__(self, workers=DEFAULT_WORKERS, progress=None):
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.pool = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kubefab")
        self.progress = progress or (lambda *a: None)
        self.stopping = threading.Event()
        self.seconds = {}

    def close(self):
        self.pool.shutdown(wait=True, cancel_futures=True)

    def phase(self, name, batches, work, budget=0):
        """work(host) -> HostResult for each host, batch after batch; more than `budget` failures end the phase."""
        results, start = [], time.monotonic()
        total = sum(len(b) for b in batches)
        for index, batch in enumerate(batches):
            if sum(r.failed for r in results) > budget or self.stopping.is_set():
                why = "interrupted" if self.stopping.is_set() else "an earlier batch failed"
                results += [HostResult(h.name, name, SKIPPED, detail=why) for b in batches[index:] for h in b]
                break
            results += self._batch(name, batch, work, results, total, start)
        elapsed = time.monotonic() - start
        self.seconds[name] = self.seconds.get(name, 0.0) + elapsed
        self.progress(name, len(results), sum(r.failed for r in results), total, elapsed)
        return tuple(results)

    def _batch(self, name, batch, work, earlier, total, start):
        futures = {self.pool.submit(self._guarded, name, host, work): host for host in batch}
        done = {}
        try:
            while len(done) < len(futures):
                finished, _ = cf.wait([f for f in futures if f not in done], timeout=TICK)
                done.update((f, f.result()) for f in finished)
                failed = sum(r.failed for r in (*earlier, *done.values()))
                self.progress(name, len(earlier) + len(done), failed, total, time.monotonic() - start)
        except KeyboardInterrupt:
            self.stopping.set()
            for f in futures:
                f.cancel()
            cf.wait([f for f in futures if not f.cancelled()])
            raise Interrupted((*earlier, *self._collect(name, futures))) from None
        return tuple(done[f] for f in futures)

    def _collect(self, name, futures):
        return tuple(HostResult(host.name, name, SKIPPED, detail="interrupted") if f.cancelled() else f.result()
                     for f, host in futures.items())

    def _guarded(self, name, host, work):
        """work(host), its exception turned into a failed result, or skipped once Ctrl-C was pressed."""
        if self.stopping.is_set():
            return HostResult(host.name, name, SKIPPED, detail="interrupted")
        start = time.monotonic()
        try:
            return work(host)
        except Exception as e:
            log.debug("%s on %s raised", name, host.name, exc_info=True)
            return HostResult(host.name, name, FAILED, time.monotonic() - start, detail=str(e) or type(e).__name__)
