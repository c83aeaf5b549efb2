"""What the CLI says (issue 20, item 9): help without an error, did-you-mean, counts with the right plural, aligned
columns, rounded numbers, hints whose commands run, and refusals instead of silent choices.

Commands run through the real entry point (toolkit.cli.main); where a line needs a model run, the library call the
command makes returns a fixed result, so the test reads exactly what the command prints for it.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from tests.unit.test_cli_flags import assert_usage_error, ftk
from toolkit.bench import BenchResult, format_csv, format_table
from toolkit.bench.host import BenchEntry, LatencyStats
from toolkit.commands.evaluate import format_result
from toolkit.compare import CompareResult, PairScore
from toolkit.errors import ConfigError
from toolkit.match import Candidate, MatchResult
from toolkit.prepare import _too_few_message
from toolkit.reports import ThresholdChoice, resolve_threshold
from toolkit.wording import plural


def test_ftk_alone_prints_the_help_not_an_error():
    code, out, err = ftk()
    assert code == 0 and err == ""
    assert out.startswith("Usage: ftk [OPTIONS] COMMAND") and "Commands:" in out and "evaluate" in out


def test_a_mistyped_command_gets_a_did_you_mean():
    code, _, err = ftk("evalute", "model.pt")
    assert_usage_error(code, err, "no such command 'evalute'; did you mean 'evaluate'?")
    code, _, err = ftk("frobnicate")
    assert_usage_error(code, err, "the commands: bench, cache, compare, deploy, evaluate")


def test_plural():
    assert [plural(1, "epoch"), plural(2, "epoch"), plural(0, "face")] == ["1 epoch", "2 epochs", "0 faces"]
    assert plural(1, "identity", "identities") == "1 identity" and plural(3, "process", "processes") == "3 processes"


def _fake_module(monkeypatch, name: str, **attrs) -> None:
    module = types.ModuleType(name)
    for key, value in attrs.items():
        setattr(module, key, value)
    monkeypatch.setitem(sys.modules, name, module)


def test_train_says_1_epoch(monkeypatch, tmp_path):
    result = types.SimpleNamespace(epochs_completed=1, num_classes=1, num_train=10, num_val=2, device="cpu",
                                   amp=False, world_size=1, seconds=1.0, images_per_second=10.0, last_metrics={},
                                   best_val_acc=None, best_checkpoint="b.pt", last_checkpoint="l.pt", out_dir="run", rank=0)
    _fake_module(monkeypatch, "toolkit.train", train_from_config_file=lambda *a, **k: result)
    code, out, err = ftk("train", "--config", tmp_path / "cfg.yaml")
    assert code == 0, err
    assert out.startswith("trained 1 epoch (1 identity, 10 train / 2 val faces) on cpu (amp False, 1 process)")


def test_compare_and_match_align_negative_scores(monkeypatch, tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"")
    pairs = [PairScore("a/x.jpg", "a/y.jpg", 0.8123, None), PairScore("a/x.jpg", "b/longer_name.jpg", -0.0456, None)]
    compared = CompareResult("tflite-m", "0" * 64, {"backbone": "tiny", "crop": "box"}, ["a/x.jpg", "a/y.jpg"], [],
                             [[1.0, 0.8123], [0.8123, 1.0]], pairs, None, "none", "no threshold")
    _fake_module(monkeypatch, "toolkit.embedders", EmbedderOptions=lambda **k: k,
                 load_embedder=lambda path, options: types.SimpleNamespace(spec=None))
    monkeypatch.setattr("toolkit.compare.compare_images", lambda *a, **k: compared)
    code, out, err = ftk("compare", "a.jpg", "b.jpg", "--model", model)
    assert code == 0, err
    lines = [line for line in out.splitlines() if " vs " in line]
    assert len(lines) == 2 and len({line.rindex(".") for line in lines}) == 1, lines  # decimal points in one column
    assert lines[1].endswith(" -0.0456"), lines

    top = [Candidate("Ann", 0.5, "ann.jpg", 2), Candidate("Bartholomew", -0.25, "b.jpg", 1)]
    matched = MatchResult("p.jpg", "m", "0" * 64, "g.npz", 2, 3, top, None, None, None, 1.0, 1.0, 0.1)
    _fake_module(monkeypatch, "toolkit.match", load_gallery=lambda source: types.SimpleNamespace(
        embeddings=[0, 1, 2], names=["Ann", "Bartholomew"]), match_probe=lambda *a, **k: matched,
        enroll_gallery=None, save_gallery=None)
    monkeypatch.setattr("toolkit.reports.resolve_threshold",
                        lambda *a, **k: ThresholdChoice(None, "none", "no threshold"))
    gallery = tmp_path / "g.npz"
    gallery.write_bytes(b"")
    code, out, err = ftk("match", "p.jpg", "--gallery", gallery, "--model", model)
    assert code == 0, err
    ranked = [line for line in out.splitlines() if line.startswith("  1.") or line.startswith("  2.")]
    assert len(ranked) == 2 and ranked[0].index("(best") == ranked[1].index("(best"), ranked


def test_evaluate_says_why_faces_were_skipped():
    classification = types.SimpleNamespace(accuracy=0.5, n_faces=10, split="test", n_skipped=42, n_not_classes=40,
                                           n_no_face=2)
    result = types.SimpleNamespace(model_path="m.pt", embedder="pytorch", model_sha256="0" * 64,
                                   classification=classification, verification=None, notes=[], report_path=None,
                                   seconds=1.0)
    line = format_result(result).splitlines()[1]
    assert line.endswith("on 10 'test' faces, 42 skipped (40 of people the model has no class for; 2 without a "
                         "usable face)")


def test_the_too_few_people_message_counts_each_step():
    people = {"Ann": [Path("a1.jpg"), Path("a2.jpg")], "Bob": [Path(f"b{i}.jpg") for i in range(25)]}
    faces = {"Bob": [(Path("b0.jpg"), None)] * 19}  # only Bob's folder was big enough to detect in
    message = _too_few_message(Path("photos"), people, faces, {}, 20, [])
    assert ("only 0 of 2 identities have >= 20 usable faces (27 images in 2 person folders; 1 of those folders "
            "have >= 20 images, and detection found 19 faces in them)") in message


def test_a_missing_threshold_hint_is_a_command_that_runs(tmp_path):
    note = resolve_threshold(tmp_path / "weights.pt", None, model_flags="--backbone mobilefacenet").note
    assert f"`ftk evaluate {tmp_path / 'weights.pt'} --backbone mobilefacenet --pairs PAIRS`" in note
    assert "--pairs PAIRS`" in resolve_threshold(tmp_path / "m.tflite").note


def test_bench_table_and_csv_in_mib_and_rounded(tmp_path):
    entry = BenchEntry(model="m.tflite", path="m.tflite", backend="litert", device="host", threads=2,
                       file_size_bytes=3 * 2**20, load_ms=1.23456789, first_inference_ms=0.1,
                       latency=LatencyStats.from_ns([1_234_567, 1_234_568, 2_000_001]))
    entry.peak_rss_mb = 57.120000000000005
    result = BenchResult(device="host", entries=[entry])
    header, row = format_csv(result).splitlines()
    assert "size_mib" in header and "peak_rss_mib" in header and "_mb" not in header
    assert "57.12," in row and "1.2346," in row and "3.0," in row and "57.120000000000005" not in row
    assert "size_mib" in format_table(result)


def test_pipeline_refuses_a_parity_limit_the_export_cannot_hold_out(tmp_path):
    from toolkit.pipeline import load_pipeline_config

    (tmp_path / "pairs.txt").write_text("1\t1\n")
    (tmp_path / "photos").mkdir()
    config = tmp_path / "p.yaml"
    config.write_text("prepare:\n  images: photos\nevaluate:\n  pairs: pairs.txt\nparity:\n  limit: 128\n")
    with pytest.raises(ConfigError, match=r"parity.limit 128 is more than the 64 faces .*export.parity_faces: 128"):
        load_pipeline_config(config)
    config.write_text(config.read_text() + "export:\n  parity_faces: 128\n")
    assert load_pipeline_config(config).export.parity_faces == 128
