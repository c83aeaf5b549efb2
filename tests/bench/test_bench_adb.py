"""`ftk bench --device adb` against the real AOSP adbd (sandboxed: private netns/mount/pid, no vsock, tmpfs /data).

The loopback "device" runs shell commands on this host, where the stand-in runner takes benchmark_model's place.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from toolkit.bench import format_table, run_bench
from toolkit.bench.adb import AdbBenchOptions, PythonAdbClient, bench_adb
from toolkit.bench.cpu import host_cpu
from toolkit.errors import DependencyError, DeviceError

pytestmark = pytest.mark.adb


def quick_options(standin, device_python, **overrides) -> AdbBenchOptions:
    base = dict(threads=(1,), warmup=1, runs=10, repeats=2, cooldown_s=0.1, benchmark_binary=standin,
                device_python=device_python)
    base.update(overrides)
    return AdbBenchOptions(**base)


def test_push_run_parse_end_to_end(adbd, tiny_tflite, tmp_path, standin_runner, device_python):
    out = tmp_path / "out"
    started = time.perf_counter()
    result = run_bench([tiny_tflite], device="adb", serials=[adbd.serial], threads="1,2", warmup=1, runs=10,
                       repeats=2, cooldown_s=0.1, benchmark_binary=standin_runner, device_python=device_python,
                       out_dir=out)
    wall = time.perf_counter() - started
    assert result.complete and not result.errors
    assert [(e.device, e.threads) for e in result.entries] == [(adbd.serial, 1), (adbd.serial, 2)]
    for e in result.entries:
        assert e.backend == "benchmark_model:standin_benchmark_model.py"
        assert e.latency.n == 20 and 0 < e.latency.min_ms <= e.latency.median_ms <= e.latency.max_ms
        assert e.load_ms > 0 and e.first_inference_ms > 0 and e.peak_rss_mb > 10
        assert e.extra["harness"]["repeats"] == "2" and len(e.extra["repeats"]) == 2
        assert all(r["rc"] == 0 for r in e.extra["repeats"])
        # the stand-in saw the pushed copy under /data/local/tmp/ftk, with the requested threads
        graph = e.extra["repeats"][0]["output"]["graph"]
        assert graph.startswith("/data/local/tmp/ftk/") and graph.endswith("/model_float32.tflite")
        assert e.extra["repeats"][0]["output"]["num_threads"] == e.threads
    device = result.devices[0]
    assert device["error"] is None and device["facts"]["abi"] == "x86_64" and "model" not in device["facts"]
    # the loopback device's /proc/cpuinfo, read over adb, is this machine's
    assert device["facts"]["cpu"]["features"] == host_cpu().features and device["facts"]["cpu"]["features"]
    assert f"{adbd.serial} CPU: " in format_table(result)
    assert device["push"]["bytes"] > tiny_tflite.stat().st_size and device["push"]["mb_per_s"] > 0
    # device logs were pulled, and the work folder on the device was removed
    assert len(device["pulled"]) == 4 and all(Path(p).is_file() for p in device["pulled"])
    assert "Inference timings in us" in Path(device["pulled"][0]).read_text()
    client = PythonAdbClient(adbd.serial)
    try:
        listing, rc = client.shell("ls -A /data/local/tmp/ftk")
    finally:
        client.close()
    assert rc == 0 and listing.strip() == ""
    data = json.loads((out / "bench.json").read_text())
    assert data["complete"] is True and data["device"] == "adb" and len(data["entries"]) == 2
    assert (out / "latency.png").is_file()
    print(f"adb loopback: push {device['push']['mb_per_s']} MB/s, full bench {wall:.2f}s")


def test_paths_with_spaces_and_quotes_survive_the_device_shell(adbd, tiny_tflite, tmp_path, standin_runner,
                                                                 device_python):
    odd_dir = tmp_path / "it's a \"model\" dir"
    odd_dir.mkdir()
    odd = odd_dir / "face net; $(touch pwned) 'v1'.tflite"
    odd.write_bytes(tiny_tflite.read_bytes())
    runs = bench_adb([adbd.serial], [odd], quick_options(standin_runner, device_python))
    assert runs[0].error is None, runs[0].error
    entry = runs[0].entries[0]
    assert entry.latency is not None and entry.model == odd.name
    assert entry.extra["repeats"][0]["output"]["graph"].endswith("/face net; $(touch pwned) 'v1'.tflite")
    client = PythonAdbClient(adbd.serial)
    try:
        out, rc = client.shell("ls / /data/local/tmp | grep -c pwned")
        echoed, rc2 = client.shell(f"printf '%s' {shlex.quote(odd.name)}")
        failing, rc3 = client.shell("exit 7")
    finally:
        client.close()
    assert out.strip() == "0"  # the $(...) in the name never ran
    assert rc2 == 0 and echoed == odd.name
    assert rc3 == 7  # exit codes come back through the __FTK_RC marker


def test_two_devices_in_parallel(tmp_path, tiny_tflite, standin_runner, device_python):
    from tests.bench.adbd_sandbox import AdbdSandbox, sandbox_unavailable_reason

    if reason := sandbox_unavailable_reason():
        pytest.skip(reason)
    first = AdbdSandbox(tmp_path / "a.log").start()
    try:
        second = AdbdSandbox(tmp_path / "b.log").start()
        try:
            runs = bench_adb([first.serial, second.serial], [tiny_tflite],
                             quick_options(standin_runner, device_python, repeats=1))
        finally:
            second.stop()
    finally:
        first.stop()
    assert [r.serial for r in runs] == [first.serial, second.serial]
    assert all(r.error is None and r.entries[0].latency is not None for r in runs)


def test_device_disappearing_mid_run_keeps_partial_results(adbd, tiny_tflite, tmp_path, standin_runner,
                                                           device_python):
    out = tmp_path / "out"
    logs = out / "device_logs"
    killed = threading.Event()

    def kill_after_first_measurement():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if logs.is_dir() and any(logs.rglob("run_*.log")):  # the first setting finished and was pulled
                adbd.stop()
                killed.set()
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=kill_after_first_measurement, daemon=True)
    watcher.start()
    with pytest.raises(DeviceError, match=r"1 of 1 device\(s\) failed.*measurement\(s\) kept.*bench.json"):
        run_bench([tiny_tflite], device="adb", serials=[adbd.serial], threads="1,2,3", warmup=1, runs=100,
                  repeats=2, cooldown_s=0.5, benchmark_binary=standin_runner, device_python=device_python,
                  out_dir=out)
    watcher.join(5)
    assert killed.is_set()
    data = json.loads((out / "bench.json").read_text())
    assert data["complete"] is False and data["errors"]
    kept = [e for e in data["entries"] if e["latency"]]
    assert 1 <= len(kept) < 3 and kept[0]["threads"] == 1 and kept[0]["latency"]["n"] == 200
    assert data["devices"][0]["error"]


def test_unreachable_device_is_a_device_error(tiny_tflite, standin_runner, device_python):
    from tests.bench.adbd_sandbox import free_loopback_port

    with pytest.raises(DeviceError, match="cannot connect"):
        run_bench([tiny_tflite], device="adb", serials=[f"127.0.0.1:{free_loopback_port()}"],
                  benchmark_binary=standin_runner, device_python=device_python)


def test_missing_benchmark_binary_says_how_to_get_one(adbd, tiny_tflite, tmp_path, monkeypatch):
    monkeypatch.setenv("FTK_CACHE_DIR", str(tmp_path / "cache"))
    runs = bench_adb([adbd.serial], [tiny_tflite], AdbBenchOptions(runs=2, repeats=1))
    assert "no benchmark_model for ABI x86_64" in runs[0].error
    assert str(tmp_path / "cache" / "benchmark_model" / "x86_64" / "benchmark_model") in runs[0].error
    with pytest.raises(DeviceError):
        run_bench([tiny_tflite], device="adb", serials=[adbd.serial], runs=2, repeats=1)
    # a binary in the cache is picked up by ABI
    cached = tmp_path / "cache" / "benchmark_model" / "x86_64" / "benchmark_model"
    cached.parent.mkdir(parents=True)
    cached.write_text("#!/bin/sh\necho 'ERROR: this is not a real benchmark_model' >&2\nexit 3\n")
    runs = bench_adb([adbd.serial], [tiny_tflite], AdbBenchOptions(runs=2, repeats=1, cooldown_s=0))
    assert runs[0].error is None
    entry = runs[0].entries[0]
    assert entry.latency is None and "exited with 3" in entry.extra["error"]


def _ftk(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "toolkit.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def test_every_run_failing_on_the_device_is_exit_1_not_a_complete_bench(adbd, tiny_tflite, tmp_path,
                                                                        standin_runner):
    """The device answers, but its runner cannot start (--device-python /nonexistent/python): exit 1, the error on
    stderr, nothing that looks like an error on stdout, and bench.json says complete: false."""
    out = tmp_path / "out"
    done = _ftk("bench", tiny_tflite, "--device", "adb", "--serial", adbd.serial, "--benchmark-binary",
                standin_runner, "--device-python", "/nonexistent/python", "--warmup", "1", "--runs", "2",
                "--repeats", "1", "--cooldown", "0", "--out", out)
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.startswith("error")]  # INFO lines say "failed" too
    assert len(lines) == 1 and lines[0].startswith("error: 1 of 1 benchmark runs failed"), done.stderr
    assert "benchmark binary exited with 127" in lines[0] and str(out / "bench.json") in lines[0]
    assert "error" not in done.stdout
    data = json.loads((out / "bench.json").read_text())
    assert data["complete"] is False and len(data["errors"]) == 1 and data["entries"][0]["latency"] is None


def test_cpus_must_exist_on_the_device_and_pin(adbd, tiny_tflite, standin_runner, device_python):
    with pytest.raises(DeviceError, match=r"--cpus f+ names CPU 127, but the device has \d+ CPUs"):
        run_bench([tiny_tflite], device="adb", serials=[adbd.serial], runs=2, repeats=1, cooldown_s=0,
                  benchmark_binary=standin_runner, device_python=device_python, cpus="f" * 32)
    result = run_bench([tiny_tflite], device="adb", serials=[adbd.serial], runs=2, repeats=1, cooldown_s=0,
                       benchmark_binary=standin_runner, device_python=device_python, cpus="1")
    harness = result.entries[0].extra["harness"]
    assert result.complete and harness["cpus"] == "1" and harness["pinned"] == "yes"
