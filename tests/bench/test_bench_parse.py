"""The benchmark_model parser on real outputs (tests/fixtures/benchmark_model/SOURCES.md), the harness and facts."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolkit.bench.adb import parse_facts, parse_harness_output, split_exit_code, with_exit_code
from toolkit.bench.cpu import parse_cpuinfo
from toolkit.bench.parse import BenchmarkOutputError, parse_benchmark_output
from toolkit.errors import DeviceError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "benchmark_model"


def load(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_every_fixture_has_a_source_note():
    notes = (FIXTURES / "SOURCES.md").read_text()
    samples = sorted(p.name for p in FIXTURES.glob("*.txt"))
    assert len(samples) >= 6
    for name in samples:
        assert name in notes, f"{name} has no source in SOURCES.md"


def test_peak_memory_wording_without_prefix():
    out = parse_benchmark_output(load("tf42507_peak_memory_no_prefix.txt"))
    assert out.init_us == 855 and out.first_inference_us == 49060
    assert out.warmup_avg_us == pytest.approx(34825.1) and out.inference_avg_us == pytest.approx(33209.4)
    assert out.warmup.count == 15 and out.warmup.std_us == 3930
    assert out.inference.count == 50 and out.inference.min_us == 32641 and out.inference.max_us == 34005
    assert out.memory_kind == "peak" and out.memory_init_mb == 0 and out.memory_overall_mb == pytest.approx(12.8672)
    assert out.num_threads == 4 and out.model_size_mb == pytest.approx(0.004448)
    assert out.init_session_ms == pytest.approx(0.855)
    assert out.graph == "/data/local/tmp/espcn_harmonic_2x_slim_w_cl.tflite"
    assert out.latency_avg_ms == pytest.approx(33.2094)


def test_memory_delta_wording():
    out = parse_benchmark_output(load("xnnpack999_delta_memory.txt"))
    assert out.memory_kind == "delta"
    assert (out.memory_init_mb, out.memory_overall_mb) == (pytest.approx(8.97656), pytest.approx(18.7227))
    assert out.inference_avg_us == pytest.approx(55043.2) and out.inference.first_us == 58154


def test_info_prefix_on_every_line():
    out = parse_benchmark_output(load("tf73862_info_prefix.txt"))
    assert out.init_us == 12750 and out.inference_avg_us == pytest.approx(13520.2)
    assert out.warmup.count == 37 and out.inference.count == 74 and out.inference.std_us == 470
    assert out.graph == "mobilenet_v1_1.0_224.tflite" and out.model_size_mb == pytest.approx(16.9008)
    assert out.memory_overall_mb is None  # the sample ends before the memory line


def test_scientific_notation_and_partial_count_lines():
    out = parse_benchmark_output(load("ti_sdk_sci_notation_p5_median.txt"))
    assert out.inference_avg_us == pytest.approx(1.24027e6) and out.warmup_avg_us == pytest.approx(1.3576e6)
    # the one-run warm-up line has only count/curr/p5/median/p95
    assert out.warmup.count == 1 and out.warmup.avg_us is None and out.warmup.median_us == 1357602
    assert out.inference.avg_us == pytest.approx(1.24027e6) and out.inference.median_us == 1239807
    assert out.inference.p95_us == 1247415
    assert out.memory_kind == "delta" and out.memory_overall_mb == pytest.approx(109.832)


def test_summary_lines_only_with_scientific_notation():
    out = parse_benchmark_output(load("rockpi_sci_notation_summary_only.txt"))
    assert out.warmup_avg_us == pytest.approx(1.02913e6) and out.inference_avg_us == pytest.approx(1.10134e6)
    assert out.first_inference_us == 1058110 and out.warmup is None and out.inference is None
    assert out.latency_avg_ms == pytest.approx(1101.34)


def test_legacy_average_timings_wording():
    out = parse_benchmark_output(load("legacy_average_timings_2018.txt"))
    assert out.init_us == 9933 and out.warmup_avg_us == pytest.approx(76605.9)
    assert out.inference_avg_us == pytest.approx(66767.6) and out.inference.count == 15


def test_android_taskset_sample():
    out = parse_benchmark_output(load("android_taskset_albert.txt"))
    assert out.num_threads == 1 and out.inference_avg_us == 266473 and out.warmup.count == 2


def test_no_timings_is_a_clear_error():
    with pytest.raises(BenchmarkOutputError, match="no inference timings.*Failed to construct"):
        parse_benchmark_output("STARTING!\nERROR: Failed to construct interpreter\n", source="run 1")


def test_harness_output_split_into_runs():
    body = load("tf73862_info_prefix.txt")
    text = (f"FTK_HARNESS version=1 threads=4 repeats=2 cpus=f0 pinned=yes\nFTK_BEGIN repeat=1\n{body}\n"
            "FTK_END repeat=1 rc=0 wall_ms=1234\nFTK_TEMP repeat=1 max_thermal_mc=41000\nFTK_BEGIN repeat=2\n"
            "ERROR: boom\nFTK_END repeat=2 rc=1 wall_ms=NA\nFTK_DONE repeats=2 failures=1\n")
    info, runs = parse_harness_output(text)
    assert info == {"version": "1", "threads": "4", "repeats": "2", "cpus": "f0", "pinned": "yes"}
    assert [r.rc for r in runs] == [0, 1]
    assert runs[0].wall_ms == 1234 and runs[0].parsed.inference_avg_us == pytest.approx(13520.2)
    assert runs[1].wall_ms is None and runs[1].parsed is None
    assert runs[1].error.startswith("benchmark binary exited with 1: no inference timings")


def test_exit_code_marker():
    assert with_exit_code("ls 'a b'\n") == "(\nls 'a b'\n); echo \"__FTK_RC=$?\""
    assert split_exit_code("s", "hello\nworld\n__FTK_RC=3\n") == ("hello\nworld", 3)
    with pytest.raises(DeviceError, match="without reporting an exit status"):
        split_exit_code("s", "truncated output")


def test_device_facts_tolerate_absence():
    phone = parse_facts("model=Pixel 7\nabi=arm64-v8a\nandroid_release=14\nuname_m=aarch64\n"
                        "thermal_zone=cpu-0-0:41300\nthermal_zone=battery:29\nbattery_temp_tenths_c=287\n")
    assert phone["model"] == "Pixel 7" and phone["abi"] == "arm64-v8a"
    assert phone["thermal_zones_c"] == {"cpu-0-0": 41.3, "battery": 29.0} and phone["max_thermal_c"] == 41.3
    assert phone["battery_temp_c"] == pytest.approx(28.7)
    bare = parse_facts("uname_m=x86_64\ncpus=2\n")
    assert bare["abi"] == "x86_64" and "no getprop" in bare["abi_source"] and "model" not in bare


# /proc/cpuinfo excerpts in the kernel's own layout (two cores each; real files repeat the block per core).
SAPPHIRE_RAPIDS = "".join(
    f"processor\t: {i}\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz\n"
    "flags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512bw avx512_vnni avx_vnni amx_bf16 amx_tile amx_int8\n\n"
    for i in range(2))
EPYC_ROME = "".join(f"processor\t: {i}\nmodel name\t: AMD EPYC 7B12\nflags\t\t: fpu sse2 avx avx2 fma\n\n"
                    for i in range(2))
# A big.LITTLE phone without "model name": Features per core, the little cores without i8mm.
PHONE = ("processor\t: 0\nFeatures\t: fp asimd aes crc32 atomics asimddp\nCPU implementer\t: 0x41\nCPU part\t: 0xd05\n\n"
         "processor\t: 4\nFeatures\t: fp asimd aes crc32 atomics asimddp i8mm\nCPU implementer\t: 0x41\n"
         "CPU part\t: 0xd41\n\n")


def test_cpuinfo_names_the_int8_dot_product_instructions():
    intel = parse_cpuinfo(SAPPHIRE_RAPIDS)
    assert intel.model.startswith("Intel(R) Xeon(R) Platinum 8481C") and intel.arch == "x86"
    assert intel.int8_dot_product == ["AVX-512 VNNI", "AVX-VNNI", "AMX-INT8"]
    assert all(intel.features.values())
    amd = parse_cpuinfo(EPYC_ROME)
    assert amd.int8_dot_product == [] and amd.features["avx2"] and not amd.features["avx512_vnni"]
    assert amd.line() == ("AMD EPYC 7B12 (x86); int8 dot product: none; avx512_vnni no, avx_vnni no, amx_int8 no, "
                          "amx_tile no, avx512f no, avx2 yes")
    phone = parse_cpuinfo(PHONE, fallback_model="SM8450")
    assert phone.arch == "arm" and phone.model == "ARM implementer 0x41 part 0xd05, 0xd41"
    assert phone.features == {"asimddp": True, "i8mm": False}  # i8mm only on the big cores: not counted
    assert parse_cpuinfo("", fallback_model="x86_64").model == "x86_64"


def test_device_facts_carry_the_devices_cpu():
    facts = parse_facts("model=Pixel 7\nsoc=Tensor G2\n" + "".join(f"cpuinfo={line}\n" for line in PHONE.splitlines()
                                                                   if line.lower().startswith(("features", "cpu"))))
    assert facts["cpu"]["features"] == {"asimddp": True, "i8mm": False}
    assert facts["cpu"]["int8_dot_product"] == ["dotprod"] and "dotprod" in facts["cpu"]["line"]
    assert "cpu" not in parse_facts("uname_m=x86_64\n")
