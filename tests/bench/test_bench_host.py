"""Host bench on a tiny exported model through the real LiteRT interpreter: structure and sanity, not speed."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from toolkit.bench import format_table, run_bench
from toolkit.bench.adb import parse_harness_output
from toolkit.errors import InputError, OutputExistsError
from toolkit.io import sha256_file

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_host_bench_entries_are_complete_and_sane(tiny_tflite, tiny_checkpoint, tmp_path):
    out = tmp_path / "bench"
    result = run_bench([tiny_tflite], threads="1,2", warmup=2, runs=15, checkpoint=tiny_checkpoint, out_dir=out,
                       csv_path=tmp_path / "bench.csv")
    assert [(e.backend, e.threads) for e in result.entries] == [
        ("litert", 1), ("pytorch-eager", 1), ("litert", 2), ("pytorch-eager", 2)]
    for e in result.entries:
        lat = e.latency
        assert lat.n == 15 and len(e.raw_samples_ms) == 15
        assert 0 < lat.min_ms <= lat.median_ms <= lat.p90_ms <= lat.p99_ms <= lat.max_ms
        assert lat.std_ms >= 0 and lat.min_ms <= lat.mean_ms <= lat.max_ms
        assert e.load_ms > 0 and e.first_inference_ms > 0
        assert e.peak_rss_mb > e.baseline_rss_mb > 0, e.memory_note
    litert = result.entries[0]
    assert litert.sha256 == sha256_file(tiny_tflite) and litert.file_size_bytes == tiny_tflite.stat().st_size
    assert result.environment["ai_edge_litert"] and result.environment["torch"] and result.environment["cpu"]
    cpu = result.environment["cpu_info"]  # int8 speed depends on these, so they travel with the numbers
    assert cpu["model"] == result.environment["cpu"] and "int8 dot product: " in cpu["line"]
    if platform.machine() == "x86_64":
        assert cpu["arch"] == "x86" and set(cpu["features"]) >= {"avx512_vnni", "avx_vnni", "amx_int8", "avx2"}

    data = json.loads((out / "bench.json").read_text())
    assert data["format"] == "ftk.bench/1" and data["complete"] is True and len(data["entries"]) == 4
    assert data["settings"]["threads"] == [1, 2]
    png = (out / "latency.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    csv_lines = (tmp_path / "bench.csv").read_text().splitlines()
    assert csv_lines[0].startswith("device,model,backend,threads,median_ms") and len(csv_lines) == 5
    table = format_table(result)
    assert table.splitlines()[0] == f"host CPU: {cpu['line']}"
    assert "model_float32.tflite" in table and "pytorch-eager:" in table

    with pytest.raises(OutputExistsError):
        run_bench([tiny_tflite], runs=2, out_dir=out, measure_rss=False)


def test_min_time_keeps_timing_past_runs(tiny_tflite):
    result = run_bench([tiny_tflite], warmup=0, runs=3, min_time_s=0.05, measure_rss=False)
    entry = result.entries[0]
    assert entry.latency.n > 3 and sum(entry.raw_samples_ms) >= 50 * 0.9


def test_models_interleave_round_robin(tiny_tflite, tmp_path):
    copy = tmp_path / "copy.tflite"
    copy.write_bytes(tiny_tflite.read_bytes())
    result = run_bench([tiny_tflite, copy], warmup=0, runs=5, measure_rss=False)
    assert [e.model for e in result.entries] == ["model_float32.tflite", "copy.tflite"]
    assert all(e.latency.n == 5 for e in result.entries)


@pytest.mark.parametrize("bad, message", [
    ({"threads": "0"}, "--threads"), ({"threads": "a,b"}, "--threads"), ({"device": "phone"}, "--device"),
    ({"min_time_s": -1}, "--min-time"),
])
def test_bad_arguments_are_input_errors(tiny_tflite, bad, message):
    with pytest.raises(InputError, match=message):
        run_bench([tiny_tflite], measure_rss=False, **bad)


def test_missing_or_foreign_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        run_bench([tmp_path / "nope.tflite"])
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"x")
    with pytest.raises(InputError, match="not a .tflite"):
        run_bench([onnx])
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(InputError, match="TFL3"):
        run_bench([junk], measure_rss=False)


def test_cli_json_and_errors(tiny_tflite, tmp_path):
    ftk = [sys.executable, "-m", "toolkit.cli"]
    proc = subprocess.run([*ftk, "bench", str(tiny_tflite), "--runs", "5", "--warmup", "1", "--no-rss", "--json"],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["entries"][0]["latency"]["n"] == 5 and "raw_samples_ms" not in data["entries"][0]
    bad = subprocess.run([*ftk, "bench", str(tmp_path / "missing.tflite")], capture_output=True, text=True,
                         cwd=REPO_ROOT, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error: model not found")
    adb = subprocess.run([*ftk, "bench", str(tiny_tflite), "--device", "adb"], capture_output=True, text=True,
                         cwd=REPO_ROOT, timeout=120)
    assert adb.returncode == 2 and "--serial" in adb.stderr


def test_harness_runs_the_standin_locally(tiny_tflite, tmp_path, standin_runner, device_python):
    """ftk_bench.sh + the stand-in runner without adb: N repeats, logs kept, parseable results."""
    odd = tmp_path / "it's a dir" / "my model.tflite"
    odd.parent.mkdir()
    odd.write_bytes(tiny_tflite.read_bytes())
    argv = ["sh", str(REPO_ROOT / "android_harness" / "ftk_bench.sh"), "--binary", str(standin_runner),
            "--interpreter", device_python, "--threads", "1", "--repeats", "2", "--cooldown", "0.1",
            "--out", str(tmp_path / "logs"), "--", f"--graph={odd}", "--num_threads=1", "--num_runs=10",
            "--warmup_runs=1", "--min_secs=0", "--warmup_min_secs=0"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    info, runs = parse_harness_output(proc.stdout)
    assert info["repeats"] == "2" and len(runs) == 2
    for run in runs:
        assert run.rc == 0 and run.error is None
        assert run.parsed.inference.count == 10 and run.parsed.graph == str(odd)
        assert run.parsed.memory_kind == "peak" and run.parsed.memory_overall_mb > 10
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == ["run_1.log", "run_2.log"]
    # an unknown flag fails the run the way benchmark_model does, and the harness reports it
    argv[-1] = "--no_such_flag=1"
    failed = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert failed.returncode != 0
    _, runs = parse_harness_output(failed.stdout)
    assert runs[0].rc == 1 and "Unconsumed cmdline flags" in runs[0].text
