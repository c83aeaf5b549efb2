"""Parse the text TensorFlow Lite / LiteRT's ``benchmark_model`` prints.

Real output varies between builds (samples kept in ``tests/fixtures/benchmark_model/``):

* ``Inference timings in us: Init: 5846, First inference: 959, Warmup (avg): 959, Inference (avg): 1070.84``
  (current), or ``Average inference timings in us: Warmup: 76605.9, Init: 9933, no stats: 66767.6`` (before ~2019);
* numbers in C++ ``%g`` style, so large values come as ``2.95034e+06``;
* an ``INFO: `` prefix on every line in newer builds, which log through TFLITE_LOG to stderr;
* ``count=50 first=... curr=... min=... max=... avg=... std=...`` once for the warm-up phase, then once for the
  timed runs (newer builds add ``p5= median= p95=``; a one-run warm-up prints only ``count=1 curr= p5= ...``);
* ``Memory footprint delta from the start of the tool (MB): init=8.97656 overall=18.7227`` (older) or
  ``Peak memory footprint (MB): init=0 overall=12.8672`` (newer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from toolkit.errors import ToolkitError

NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)"
_PREFIX = re.compile(r"^\s*(?:INFO|WARNING|ERROR|VERBOSE):\s*", re.IGNORECASE)
# "count=50 first=.. curr=.. min=.. max=.. avg=.. std=.." (+ "p5=.. median=.. p95=.." in newer builds; a
# warm-up phase of one run prints only "count=1 curr=.. p5=.. median=.. p95=..").
_COUNT_LINE = re.compile(rf"^count=(?P<count>{NUMBER})\b")
_KEY_VALUE = re.compile(rf"(?P<key>[a-z0-9_]+)=(?P<value>{NUMBER})(?=\s|$)")
_TIMINGS = re.compile(r"^(?:Average\s+)?inference timings in us:\s*(?P<body>.*)$", re.IGNORECASE)
_TIMING_ITEM = re.compile(rf"(?P<key>[A-Za-z][A-Za-z ()]*?)\s*:\s*(?P<value>{NUMBER})")
_MEMORY = re.compile(
    rf"^(?P<kind>Memory footprint delta from the start of the tool|Peak memory footprint)\s*\(MB\):\s*"
    rf"init=(?P<init>{NUMBER})\s+overall=(?P<overall>{NUMBER})",
    re.IGNORECASE,
)
_MODEL_SIZE = re.compile(rf"^The input model file size \(MB\):\s*(?P<value>{NUMBER})")
_INIT_SESSION = re.compile(rf"^Initialized session in\s*(?P<value>{NUMBER})\s*ms")
_THREADS = re.compile(r"^(?:#threads used for CPU inference|Num threads):\s*\[(?P<value>-?\d+)\]")
_GRAPH = re.compile(r"^Graph:\s*\[(?P<value>.*)\]")

# Keys of the "Inference timings" line -> our field names (old and new wordings).
_TIMING_KEYS = {
    "init": "init_us",
    "first inference": "first_inference_us",
    "warmup (avg)": "warmup_avg_us",
    "warmup": "warmup_avg_us",
    "inference (avg)": "inference_avg_us",
    "no stats": "inference_avg_us",
}


class BenchmarkOutputError(ToolkitError):
    """The benchmark binary's output has no timings we can read."""


@dataclass
class RunStats:
    """One ``count=... first=... avg=... std=...`` line, microseconds."""

    count: int
    first_us: float | None = None
    curr_us: float | None = None
    min_us: float | None = None
    max_us: float | None = None
    avg_us: float | None = None
    std_us: float | None = None
    median_us: float | None = None
    p5_us: float | None = None
    p95_us: float | None = None

    @classmethod
    def from_line(cls, line: str) -> "RunStats":
        values = {m.group("key"): float(m.group("value")) for m in _KEY_VALUE.finditer(line)}
        known = {f"{k}_us": v for k, v in values.items() if k != "count" and f"{k}_us" in cls.__dataclass_fields__}
        return cls(count=int(values["count"]), **known)


@dataclass
class BenchmarkModelOutput:
    init_us: float | None = None
    first_inference_us: float | None = None
    warmup_avg_us: float | None = None
    inference_avg_us: float | None = None
    warmup: RunStats | None = None
    inference: RunStats | None = None
    memory_init_mb: float | None = None
    memory_overall_mb: float | None = None
    # "peak" (newer builds) or "delta" (older: footprint delta from the start of the tool)
    memory_kind: str | None = None
    model_size_mb: float | None = None
    init_session_ms: float | None = None
    num_threads: int | None = None
    graph: str | None = None
    extra_stats: list[RunStats] = field(default_factory=list)

    @property
    def latency_avg_ms(self) -> float | None:
        value = self.inference_avg_us
        if value is None and self.inference is not None:
            value = self.inference.avg_us if self.inference.avg_us is not None else self.inference.median_us
        return None if value is None else value / 1000.0


def _num(text: str) -> float:
    return float(text)


def strip_log_prefix(line: str) -> str:
    return _PREFIX.sub("", line.rstrip("\r\n"), count=1).strip()


def parse_benchmark_output(text: str, source: str = "benchmark_model output") -> BenchmarkModelOutput:
    """Read one ``benchmark_model`` run's stdout+stderr; raise :class:`BenchmarkOutputError` without timings."""
    out = BenchmarkModelOutput()
    stats: list[RunStats] = []
    for raw in text.splitlines():
        line = strip_log_prefix(raw)
        if not line:
            continue
        if _COUNT_LINE.match(line):
            stats.append(RunStats.from_line(line))
        elif m := _TIMINGS.match(line):
            for item in _TIMING_ITEM.finditer(m.group("body")):
                key = item.group("key").strip().lower()
                if key in _TIMING_KEYS:
                    setattr(out, _TIMING_KEYS[key], _num(item.group("value")))
        elif m := _MEMORY.match(line):
            out.memory_init_mb = _num(m.group("init"))
            out.memory_overall_mb = _num(m.group("overall"))
            out.memory_kind = "peak" if m.group("kind").lower().startswith("peak") else "delta"
        elif m := _MODEL_SIZE.match(line):
            out.model_size_mb = _num(m.group("value"))
        elif m := _INIT_SESSION.match(line):
            out.init_session_ms = _num(m.group("value"))
        elif m := _THREADS.match(line):
            out.num_threads = int(m.group("value"))
        elif m := _GRAPH.match(line):
            out.graph = m.group("value")
    # benchmark_model runs the warm-up phase first, then the timed runs; each prints one count= line.
    if stats:
        if len(stats) >= 2:
            out.warmup, out.inference = stats[0], stats[1]
            out.extra_stats = stats[2:]
        else:
            out.inference = stats[0]
    if out.inference_avg_us is None and out.inference is None:
        lines = [strip_log_prefix(x) for x in text.strip().splitlines()[-3:]]
        tail = " | ".join(x for x in lines if x)[:300]
        raise BenchmarkOutputError(f"no inference timings in {source}", hint=f"it ended with: {tail or '(empty)'}")
    return out
