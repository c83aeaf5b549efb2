"""Benchmark on adb-connected Android devices: push, run ``android_harness/ftk_bench.sh``, parse, pull, clean up.

Transport: the ``adb-shell`` Python package (``AdbDeviceTcp``) for ``host:port`` serials, or the ``adb`` command
(USB serials, or ``--adb-client adb``). adb-shell's ``shell()`` returns no exit status, so every command is sent as
``(<cmd>); echo "__FTK_RC=$?"`` and the marker is checked; a missing marker means the device went away. Every path and
argument that reaches the device shell goes through :func:`shlex.quote`.

On a phone the benchmark binary is TensorFlow Lite's ``benchmark_model`` built for the phone's ABI: pass
``--benchmark-binary``, or put it at ``$FTK_CACHE_DIR/benchmark_model/<abi>/benchmark_model`` (it cannot be
downloaded by ftk). ``android_harness/standin_benchmark_model.py`` stands in for it on the x86_64 loopback test
device (with ``device_python`` naming a Python that has ai-edge-litert).
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import subprocess
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from toolkit.bench.cpu import CPUINFO_KEYS, parse_cpuinfo
from toolkit.bench.host import BenchEntry, LatencyStats
from toolkit.bench.parse import BenchmarkModelOutput, BenchmarkOutputError, parse_benchmark_output
from toolkit.constants import cache_root
from toolkit.errors import DependencyError, DeviceError, InputError
from toolkit.io import sha256_file

log = logging.getLogger(__name__)

DEVICE_ROOT = "/data/local/tmp/ftk"
HARNESS_DIR = Path(__file__).resolve().parents[2] / "android_harness"
HARNESS_NAME = "ftk_bench.sh"
RC_MARKER = "__FTK_RC="
_RC_RE = re.compile(r"__FTK_RC=(\d+)\s*$")
_HOST_PORT = re.compile(r"^(?P<host>[^:\s]+):(?P<port>\d{1,5})$")
DELEGATE_FLAGS = {"cpu": [], "xnnpack": ["--use_xnnpack=true"], "gpu": ["--use_gpu=true"],
                  "nnapi": ["--use_nnapi=true"]}


# --- clients -------------------------------------------------------------------------------------------------------
class AdbClient(Protocol):
    serial: str

    def shell(self, command: str, timeout_s: float | None = None) -> tuple[str, int]: ...

    def push(self, local: Path, remote: str, mode: int = 0o644) -> None: ...

    def pull(self, remote: str, local: Path) -> None: ...

    def close(self) -> None: ...


def with_exit_code(command: str, merge_stderr: bool = False) -> str:
    # A subshell, so that `exit N` (or a multi-line script) still reaches the marker.
    redirect = " 2>&1" if merge_stderr else ""
    return f"(\n{command.strip()}\n){redirect}; echo \"{RC_MARKER}$?\""


def split_exit_code(serial: str, output: str) -> tuple[str, int]:
    text = output.rstrip()
    m = _RC_RE.search(text)
    if not m:
        raise DeviceError(f"device {serial}: the shell ended without reporting an exit status (disconnected?)",
                          hint="check the cable/connection and `adb devices`")
    return text[: m.start()].rstrip("\n"), int(m.group(1))


class PythonAdbClient:
    """adb-shell over TCP (``host:port``): no adb server needed."""

    def __init__(self, serial: str, connect_timeout_s: float = 10.0, rsa_key_path: str | None = None):
        m = _HOST_PORT.match(serial)
        if not m:
            raise InputError(f"adb-shell connects to host:port serials, got {serial!r}",
                             hint="use --adb-client adb for USB serials")
        try:
            from adb_shell.adb_device import AdbDevice
        except ImportError as exc:
            raise DependencyError("the adb-shell package is not installed", hint="pip install adb-shell") from exc
        self.serial = serial
        self._device = AdbDevice(_eof_aware_transport(m.group("host"), int(m.group("port"))),
                                 default_transport_timeout_s=connect_timeout_s)
        signers = _load_signers(rsa_key_path)
        try:
            self._device.connect(rsa_keys=signers, auth_timeout_s=connect_timeout_s,
                                 transport_timeout_s=connect_timeout_s)
        except Exception as exc:  # noqa: BLE001 - adb-shell raises socket errors and its own exception types
            raise DeviceError(f"cannot connect to device {serial}: {_describe(exc)}",
                              hint="is the device listening (adb tcpip) and the address right?") from exc

    def shell(self, command: str, timeout_s: float | None = None) -> tuple[str, int]:
        try:
            out = self._device.shell(with_exit_code(command), timeout_s=timeout_s, read_timeout_s=timeout_s or 60)
        except Exception as exc:  # noqa: BLE001
            raise DeviceError(f"device {self.serial}: shell command failed: {_describe(exc)}",
                              hint="the device may have disconnected") from exc
        return split_exit_code(self.serial, out if isinstance(out, str) else out.decode(errors="replace"))

    def push(self, local: Path, remote: str, mode: int = 0o644) -> None:
        try:
            self._device.push(str(local), remote, st_mode=0o100000 | mode, read_timeout_s=60)
        except Exception as exc:  # noqa: BLE001
            raise DeviceError(f"device {self.serial}: push {local.name} failed: {_describe(exc)}") from exc

    def pull(self, remote: str, local: Path) -> None:
        try:
            self._device.pull(remote, str(local), read_timeout_s=60)
        except Exception as exc:  # noqa: BLE001
            raise DeviceError(f"device {self.serial}: pull {remote} failed: {_describe(exc)}") from exc

    def close(self) -> None:
        try:
            self._device.close()
        except Exception:  # noqa: BLE001 - closing a dead connection
            pass


def _eof_aware_transport(host: str, port: int):
    """adb-shell's TcpTransport, except that a closed connection raises at once.

    adb-shell 0.4.4 treats ``recv() == b""`` (the peer closed) as "no data yet" and spins until ``read_timeout_s``,
    so a device that disappears would be noticed only after that timeout.
    """
    from adb_shell.transport.tcp_transport import TcpTransport

    class EofAwareTcpTransport(TcpTransport):
        def bulk_read(self, numbytes, transport_timeout_s):
            data = super().bulk_read(numbytes, transport_timeout_s)
            if not data and numbytes:
                raise ConnectionResetError(f"connection to {host}:{port} closed by the device")
            return data

    return EofAwareTcpTransport(host, port)


class CommandAdbClient:
    """The ``adb`` command (USB serials, or by choice). Argument lists, never a host shell.

    It talks to the adb server the ``adb`` command finds by itself: port 5037, or ``ANDROID_ADB_SERVER_PORT`` /
    ``ADB_SERVER_SOCKET`` from the environment (inherited by every ``adb`` call).
    """

    def __init__(self, serial: str, adb_path: str | None = None):
        self.adb = adb_path or shutil.which("adb")
        if not self.adb:
            raise DependencyError("the adb command is not on PATH",
                                  hint="install Android platform-tools, or use --adb-client python with host:port")
        self.serial = serial
        if _HOST_PORT.match(serial):
            # `adb connect` can exit 0 when it could not connect; its message says which.
            proc = self._run(["connect", serial], timeout_s=15)
            said = (proc.stdout.strip() or proc.stderr.strip()).splitlines()[-1:]
            said = said[0] if said else ""
            if not said.startswith(("connected to", "already connected to")):
                raise DeviceError(f"cannot connect to device {serial}: {said or 'adb connect said nothing'}",
                                  hint="is the device listening (adb tcpip) and the address right?")
        state = self._run(["get-state"], timeout_s=15).stdout.strip()
        if state != "device":
            raise DeviceError(f"device {serial} is {state or 'not connected'}", hint="check `adb devices`")

    def _run(self, args: list[str], timeout_s: float | None = 60) -> subprocess.CompletedProcess:
        argv = [self.adb, "-s", self.serial, *args] if args[0] != "connect" else [self.adb, *args]
        try:
            # stdin closed: `adb shell` would otherwise forward the terminal's input to the device.
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  errors="replace", timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise DeviceError(f"device {self.serial}: adb {args[0]} timed out after {timeout_s}s") from exc
        if proc.returncode != 0 and args[0] not in ("shell", "connect"):  # these two are checked by the caller
            msg = (proc.stderr or proc.stdout).strip().splitlines()
            raise DeviceError(f"device {self.serial}: adb {args[0]} failed: {msg[-1] if msg else proc.returncode}")
        return proc

    def shell(self, command: str, timeout_s: float | None = None) -> tuple[str, int]:
        # The device's stderr joins stdout, as over adb-shell (whose legacy shell service merges them); adb's own
        # complaints stay on stderr and explain a missing marker.
        proc = self._run(["shell", with_exit_code(command, merge_stderr=True)], timeout_s=timeout_s)
        if _RC_RE.search(proc.stdout.rstrip()) is None:
            said = proc.stderr.strip().splitlines()
            raise DeviceError(f"device {self.serial}: the shell ended without reporting an exit status"
                              f" (adb exit {proc.returncode}{': ' + said[-1] if said else ''})",
                              hint="check the cable/connection and `adb devices`")
        return split_exit_code(self.serial, proc.stdout)

    def push(self, local: Path, remote: str, mode: int = 0o644) -> None:
        self._run(["push", str(local), remote], timeout_s=None)
        _, rc = self.shell(f"chmod {mode:o} {shlex.quote(remote)}")
        if rc != 0:
            raise DeviceError(f"device {self.serial}: chmod {mode:o} {remote} failed (exit {rc})")

    def pull(self, remote: str, local: Path) -> None:
        self._run(["pull", remote, str(local)], timeout_s=None)

    def close(self) -> None:
        pass


def _load_signers(rsa_key_path: str | None):
    """The adb key (``~/.android/adbkey``) when present: phones with USB debugging ask to authorise it."""
    path = Path(rsa_key_path or os.environ.get("ADB_VENDOR_KEYS", "") or Path.home() / ".android" / "adbkey")
    if not path.is_file():
        return None
    try:
        from adb_shell.auth.sign_pythonrsa import PythonRSASigner

        return [PythonRSASigner.FromRSAKeyPath(str(path))]
    except Exception as exc:  # noqa: BLE001 - a key we cannot read: connect without, the device will say if needed
        log.warning("cannot use adb key %s: %s", path, exc)
        return None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def open_client(serial: str, client: str = "python") -> AdbClient:
    if client not in ("python", "adb"):
        raise InputError(f"--adb-client must be python or adb, got {client!r}")
    if client == "python" and _HOST_PORT.match(serial):
        return PythonAdbClient(serial)
    if client == "python":
        log.info("serial %s is not host:port; using the adb command", serial)
    return CommandAdbClient(serial)


# --- device facts ----------------------------------------------------------------------------------------------------
FACTS_SCRIPT = r"""
if command -v getprop >/dev/null 2>&1; then
  echo "model=$(getprop ro.product.model)"
  echo "manufacturer=$(getprop ro.product.manufacturer)"
  echo "abi=$(getprop ro.product.cpu.abi)"
  echo "android_release=$(getprop ro.build.version.release)"
  echo "sdk=$(getprop ro.build.version.sdk)"
  echo "soc=$(getprop ro.soc.model)"
fi
echo "uname_m=$(uname -m)"
grep -iE '^(@CPUINFO_KEYS@)[[:space:]]*:' /proc/cpuinfo 2>/dev/null |
  sed 's/^/cpuinfo=/'
echo "cpus=$(grep -c '^processor' /proc/cpuinfo 2>/dev/null)"
for z in /sys/class/thermal/thermal_zone*; do
  [ -r "$z/temp" ] && echo "thermal_zone=$(cat "$z/type" 2>/dev/null):$(cat "$z/temp" 2>/dev/null)"
done
if command -v dumpsys >/dev/null 2>&1; then
  dumpsys thermalservice 2>/dev/null | grep -m1 -i 'thermal status' | sed 's/^ */thermal_status_line=/'
  dumpsys battery 2>/dev/null | grep -m1 -i 'temperature' | sed 's/^ *temperature: */battery_temp_tenths_c=/'
fi
true
""".replace("@CPUINFO_KEYS@", "|".join(CPUINFO_KEYS))

UNAME_TO_ABI = {"aarch64": "arm64-v8a", "armv7l": "armeabi-v7a", "armv8l": "armeabi-v7a", "x86_64": "x86_64",
                "i686": "x86"}


def parse_facts(text: str) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    zones: dict[str, float] = {}
    cpuinfo: list[str] = []
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        value = value.strip()
        if key == "cpuinfo":
            cpuinfo.append(value)
        elif key == "thermal_zone":
            name, _, temp = value.rpartition(":")
            try:
                milli = float(temp)
                zones[name or f"zone{len(zones)}"] = milli / 1000.0 if abs(milli) > 200 else milli
            except ValueError:
                pass
        elif key == "battery_temp_tenths_c":
            try:
                facts["battery_temp_c"] = float(value) / 10.0
            except ValueError:
                pass
        elif value:
            facts[key] = value
    if zones:
        facts["thermal_zones_c"] = zones
        facts["max_thermal_c"] = max(zones.values())
    if cpuinfo:  # the device's CPU and its int8-deciding features (toolkit.bench.cpu)
        facts["cpu"] = parse_cpuinfo("\n".join(cpuinfo), fallback_model=facts.get("soc", "")).to_dict()
    if "abi" not in facts and "uname_m" in facts:
        facts["abi"] = UNAME_TO_ABI.get(facts["uname_m"], facts["uname_m"])
        facts["abi_source"] = "uname -m (no getprop: not an Android build)"
    return facts


def read_device_facts(client: AdbClient) -> dict[str, Any]:
    out, _ = client.shell(FACTS_SCRIPT, timeout_s=30)
    return parse_facts(out)


# --- benchmark binary --------------------------------------------------------------------------------------------------
def _cache_root() -> Path:
    return cache_root()


def resolve_benchmark_binary(given: str | Path | None, abi: str) -> Path:
    if given is not None:
        path = Path(given)
        if not path.is_file():
            raise InputError(f"benchmark binary not found: {path}")
        return path
    cached = _cache_root() / "benchmark_model" / abi / "benchmark_model"
    if cached.is_file():
        return cached
    raise DependencyError(
        f"no benchmark_model for ABI {abi}: ftk cannot download it",
        hint=f"pass --benchmark-binary PATH (TensorFlow Lite's benchmark_model built for {abi}) or put it at {cached}",
    )


# --- harness output ---------------------------------------------------------------------------------------------------
_BEGIN = re.compile(r"^FTK_BEGIN repeat=(\d+)")
_END = re.compile(r"^FTK_END repeat=(\d+) rc=(\d+)(?: wall_ms=(\S+))?")
_HARNESS = re.compile(r"^FTK_HARNESS (.*)$")


@dataclass
class HarnessRun:
    repeat: int
    rc: int
    wall_ms: float | None
    text: str
    parsed: BenchmarkModelOutput | None = None
    error: str | None = None


def parse_harness_output(text: str) -> tuple[dict[str, str], list[HarnessRun]]:
    """Split ``ftk_bench.sh`` output into its runs; parse each run's ``benchmark_model`` text."""
    info: dict[str, str] = {}
    runs: list[HarnessRun] = []
    current: list[str] | None = None
    for line in text.splitlines():
        if m := _HARNESS.match(line):
            info.update(kv.split("=", 1) for kv in m.group(1).split() if "=" in kv)
        elif _BEGIN.match(line):
            current = []
        elif m := _END.match(line):
            body = "\n".join(current or [])
            wall = m.group(3)
            run = HarnessRun(repeat=int(m.group(1)), rc=int(m.group(2)),
                             wall_ms=float(wall) if wall and wall.replace(".", "", 1).isdigit() else None, text=body)
            try:
                run.parsed = parse_benchmark_output(body, source=f"run {run.repeat}")
            except BenchmarkOutputError as exc:
                run.error = str(exc)
            if run.rc != 0:
                run.error = f"benchmark binary exited with {run.rc}" + (f": {run.error}" if run.error else "")
            runs.append(run)
            current = None
        elif current is not None:
            current.append(line)
    return info, runs


def entry_from_runs(entry: BenchEntry, runs: list[HarnessRun]) -> None:
    """Fill ``entry`` from the repeats: latency over the runs' averages (benchmark_model gives no raw samples)."""
    import numpy as np

    good = [r.parsed for r in runs if r.parsed is not None and r.rc == 0 and r.parsed.latency_avg_ms is not None]
    entry.extra["repeats"] = [
        {"repeat": r.repeat, "rc": r.rc, "wall_ms": r.wall_ms, "error": r.error,
         **({"output": asdict(r.parsed)} if r.parsed else {})} for r in runs]
    if not good:
        errors = "; ".join(sorted({r.error or "" for r in runs})) or "no runs"
        entry.extra["error"] = errors
        return
    avgs = np.array([p.latency_avg_ms for p in good], dtype=np.float64)
    mins = [p.inference.min_us / 1000 for p in good if p.inference and p.inference.min_us is not None]
    maxs = [p.inference.max_us / 1000 for p in good if p.inference and p.inference.max_us is not None]
    stds = [p.inference.std_us / 1000 for p in good if p.inference and p.inference.std_us is not None]
    medians = [p.inference.median_us / 1000 for p in good if p.inference and p.inference.median_us is not None]
    counts = [p.inference.count for p in good if p.inference]
    entry.latency = LatencyStats(
        n=int(sum(counts)) if counts else len(good),
        median_ms=float(np.median(medians)) if len(medians) == len(good) else float(np.median(avgs)),
        p90_ms=float(np.percentile(avgs, 90)), p99_ms=float(np.percentile(avgs, 99)),
        mean_ms=float(avgs.mean()),
        # within-run spread (benchmark_model's std) pooled over repeats, or the spread of the repeat averages
        std_ms=float(np.sqrt(np.mean(np.square(stds)))) if len(stds) == len(good) else float(avgs.std()),
        min_ms=float(min(mins)) if mins else float(avgs.min()), max_ms=float(max(maxs)) if maxs else float(avgs.max()))
    entry.extra["latency_note"] = ("median/mean/p90/p99 over the repeats' per-run averages (median over the runs' "
                                   "medians when the binary prints them); min/max/std from benchmark_model's "
                                   "per-run statistics")
    first = good[0]
    entry.load_ms = first.init_us / 1000 if first.init_us is not None else first.init_session_ms
    entry.first_inference_ms = first.first_inference_us / 1000 if first.first_inference_us is not None else None
    overall = [p.memory_overall_mb for p in good if p.memory_overall_mb is not None]
    if overall:
        entry.peak_rss_mb = float(max(overall))
        kind = good[0].memory_kind
        entry.memory_note = ("benchmark_model's 'Peak memory footprint' overall (MB)" if kind == "peak" else
                             "benchmark_model's 'Memory footprint delta from the start of the tool' overall (MB)")


# --- one device --------------------------------------------------------------------------------------------------------
@dataclass
class DeviceRun:
    serial: str
    facts: dict[str, Any] = field(default_factory=dict)
    entries: list[BenchEntry] = field(default_factory=list)
    push: dict[str, Any] = field(default_factory=dict)
    pulled: list[str] = field(default_factory=list)
    error: str | None = None
    wall_s: float | None = None


@dataclass
class AdbBenchOptions:
    threads: Sequence[int] = (1,)
    warmup: int = 5
    runs: int = 50
    min_time_s: float | None = None
    repeats: int = 3
    cooldown_s: float = 2.0
    delegate: str = "cpu"
    cpus: str | None = None  # taskset mask; default: the harness picks the fastest cores
    benchmark_binary: str | Path | None = None
    device_python: str | None = None  # for a Python stand-in runner (loopback test device)
    adb_client: str = "python"
    pull_to: Path | None = None  # where the device-side logs go (per serial)
    run_timeout_s: float = 1800.0


def _runner_flags(model_remote: str, threads: int, opts: AdbBenchOptions) -> list[str]:
    flags = [f"--graph={model_remote}", f"--num_threads={threads}", f"--num_runs={opts.runs}",
             f"--warmup_runs={opts.warmup}", "--warmup_min_secs=0",
             f"--min_secs={opts.min_time_s if opts.min_time_s is not None else 0}"]
    if opts.delegate not in DELEGATE_FLAGS:
        raise InputError(f"--delegate must be one of {', '.join(DELEGATE_FLAGS)}, got {opts.delegate!r}")
    return flags + DELEGATE_FLAGS[opts.delegate]


def bench_device(serial: str, models: Sequence[Path], opts: AdbBenchOptions, client: AdbClient | None = None,
                 on_entry: Callable[[BenchEntry], None] | None = None) -> DeviceRun:
    """Push, run, parse, pull, clean up on one device. Never raises for device trouble: the error is recorded in
    the returned :class:`DeviceRun` next to everything measured before it."""
    result = DeviceRun(serial=serial)
    started = time.perf_counter()
    remote_dir = f"{DEVICE_ROOT}/{uuid.uuid4().hex[:12]}"
    try:
        client = client or open_client(serial, opts.adb_client)
    except (DeviceError, DependencyError, InputError) as exc:  # e.g. no adb command: this device's error
        result.error = str(exc)
        return result
    try:
        result.facts = read_device_facts(client)
        _check_cpus_exist(opts.cpus, result.facts)
        abi = result.facts.get("abi", "unknown")
        binary = resolve_benchmark_binary(opts.benchmark_binary, abi)
        _check(client, f"mkdir -p {shlex.quote(remote_dir)}", "create the work folder")
        pushed_bytes, push_s = 0, 0.0
        harness_remote = f"{remote_dir}/{HARNESS_NAME}"
        binary_remote = f"{remote_dir}/{binary.name}"
        model_remotes: dict[Path, str] = {}
        uploads = [(HARNESS_DIR / HARNESS_NAME, harness_remote, 0o755), (binary, binary_remote, 0o755)]
        for i, model in enumerate(models):
            # The model keeps its name (spaces, quotes and all: the quoting is exercised), in its own folder.
            model_remotes[model] = f"{remote_dir}/m{i}/{model.name}"
        if len(models):
            _check(client, "mkdir -p " + " ".join(shlex.quote(str(Path(r).parent)) for r in model_remotes.values()),
                   "create the model folders")
        uploads += [(m, r, 0o644) for m, r in model_remotes.items()]
        for local, remote, mode in uploads:
            t0 = time.perf_counter()
            client.push(local, remote, mode)
            push_s += time.perf_counter() - t0
            pushed_bytes += local.stat().st_size
        result.push = {"bytes": pushed_bytes, "seconds": round(push_s, 4),
                       "mb_per_s": round(pushed_bytes / 1e6 / push_s, 2) if push_s > 0 else None}
        for model in models:
            sha = sha256_file(model)
            for threads in opts.threads:
                entry = BenchEntry(model=model.name, path=str(model), backend=f"benchmark_model:{binary.name}",
                                   device=serial, threads=int(threads), sha256=sha,
                                   file_size_bytes=model.stat().st_size)
                log_dir = f"{remote_dir}/logs/t{threads}_m{models.index(model)}"
                argv = ["sh", harness_remote, "--binary", binary_remote, "--threads", str(threads),
                        "--repeats", str(opts.repeats), "--cooldown", str(opts.cooldown_s), "--out", log_dir]
                if opts.cpus:
                    argv += ["--cpus", opts.cpus]
                if opts.device_python:
                    argv += ["--interpreter", opts.device_python]
                argv += ["--", *_runner_flags(model_remotes[model], int(threads), opts)]
                command = " ".join(shlex.quote(a) for a in argv) + " 2>&1"
                out, rc = client.shell(command, timeout_s=opts.run_timeout_s)
                info, runs = parse_harness_output(out)
                if opts.cpus and info.get("pinned") == "no":
                    raise InputError(f"device {serial}: could not pin to --cpus {opts.cpus} (no taskset there, or "
                                     "those CPUs are not allowed to this shell)", hint="leave --cpus out, or pick others")
                entry.extra["harness"] = info
                entry.extra["harness_rc"] = rc
                entry_from_runs(entry, runs)
                if rc != 0 and "error" not in entry.extra:
                    entry.extra["error"] = f"harness exited with {rc}: {out.strip().splitlines()[-1:]}"
                result.entries.append(entry)
                if on_entry:
                    on_entry(entry)
                if opts.pull_to is not None:
                    _pull_logs(client, log_dir, opts.pull_to / _safe(serial) / Path(log_dir).name, runs, result)
        result.facts["after"] = {k: v for k, v in read_device_facts(client).items()
                                 if k in ("max_thermal_c", "battery_temp_c", "thermal_status_line")}
    except DeviceError as exc:
        result.error = str(exc)
    except (DependencyError, InputError) as exc:
        result.error = str(exc)
    finally:
        try:
            client.shell(f"rm -rf {shlex.quote(remote_dir)}", timeout_s=30)
        except DeviceError:
            pass  # the device is gone; nothing left to clean from here
        client.close()
        result.wall_s = round(time.perf_counter() - started, 3)
    return result


def _check_cpus_exist(mask: str | None, facts: dict[str, Any]) -> None:
    """A --cpus mask may name only CPUs the device has (taskset would pin to what is left, or fail)."""
    count = str(facts.get("cpus", ""))
    if not mask or not count.isdigit():
        return
    highest = int(mask, 16).bit_length() - 1
    if highest >= int(count):
        raise InputError(f"--cpus {mask} names CPU {highest}, but the device has {count} CPUs (0..{int(count) - 1})",
                         hint="leave --cpus out to use the fastest cores")


def _check(client: AdbClient, command: str, what: str) -> str:
    out, rc = client.shell(command, timeout_s=60)
    if rc != 0:
        raise DeviceError(f"device {client.serial}: could not {what} (exit {rc}): {out.strip()[:200]}")
    return out


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def _pull_logs(client: AdbClient, remote_dir: str, local_dir: Path, runs: list[HarnessRun], result: DeviceRun) -> None:
    local_dir.mkdir(parents=True, exist_ok=True)
    for run in runs:
        remote = f"{remote_dir}/run_{run.repeat}.log"
        local = local_dir / f"run_{run.repeat}.log"
        client.pull(remote, local)
        result.pulled.append(str(local))


def bench_adb(serials: Sequence[str], models: Sequence[str | Path], opts: AdbBenchOptions,
              on_entry: Callable[[BenchEntry], None] | None = None) -> list[DeviceRun]:
    """All devices in parallel (one thread each); each returns what it measured and its error, if any."""
    if not serials:
        raise InputError("--device adb needs at least one --serial", hint="see `adb devices`; e.g. --serial 192.168.1.7:5555")
    paths = [Path(m) for m in models]
    for p in paths:
        if not p.is_file():
            raise InputError(f"model not found: {p}")
    if opts.runs < 1 or opts.repeats < 1 or opts.warmup < 0:
        raise InputError("--runs and --repeats must be >= 1 and --warmup >= 0")
    results: dict[str, DeviceRun] = {}
    lock = threading.Lock()

    def work(serial: str) -> None:
        run = bench_device(serial, paths, opts, on_entry=on_entry)
        with lock:
            results[serial] = run

    threads = [threading.Thread(target=work, args=(s,), name=f"adb-{s}") for s in serials]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [results[s] for s in serials]
