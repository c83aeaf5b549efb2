"""Peak memory of a conversion (sampled) and litert-torch's progress output, shown or hidden."""

from __future__ import annotations

import contextlib
import os
import resource
import threading
from typing import Iterator

from toolkit import native_logs


class PeakRss:
    """Samples this process's resident set size in a thread; ``peak`` is the largest value seen in the block.

    ``ru_maxrss`` only ever grows over the life of the process, so it cannot separate float32 from int8 when both
    run in one process; sampling /proc/self/statm can (up to the sampling interval).
    """

    def __init__(self, interval_s: float = 0.05):
        self.interval_s = interval_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def _rss(self) -> int:
        try:
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * self._page
        except (OSError, ValueError, IndexError):
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "PeakRss":
        self.peak = self._rss()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, self._rss())


def process_peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


@contextlib.contextmanager
def litert_progress(enabled: bool) -> Iterator[None]:
    """litert-torch's own task log (``[START] ... [ DONE]`` on stdout) only with ``-v`` (and ``enabled``); the
    converter's C++/absl lines on file descriptor 2 hidden unless ``-v`` (toolkit.native_logs); on failure the tail
    of what was hidden is logged."""
    with native_logs.quiet_import():
        import litert_torch

    config = litert_torch._config.config
    before = config.show_progress
    config.show_progress = enabled and native_logs.verbose()
    try:
        with native_logs.native_stderr_hidden("the converter"):
            yield
    finally:
        config.show_progress = before
