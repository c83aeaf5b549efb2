"""The main job end to end on a tiny model and real LFW faces: every stage, the report, and stage caching.

One uncached run (the module's ``finished_run``) is shared: each test that reruns works on its own copy of it, which
is itself a moved run folder.
"""

from __future__ import annotations

import json
import re
import shutil
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_face_pairs
from tests.conftest import shared_root
from toolkit.errors import ConfigError


# The pipeline deploys into the real app (read-only in ../shared: the run works on a writable copy of it).
REAL_APP = (shared_root() or Path("/nonexistent")) / "apps" / "face-data-matching-app"
REAL_SOURCES = "app/src/main/java/com/example/facerecognitioninputsapp"


def _config(tmp_path: Path, face_folder: Path, train: bool = True, deploy: bool = False) -> Path:
    pairs = tmp_path / "pairs.txt"
    write_face_pairs(pairs, face_folder)
    train_section = """
train:
  epochs: 1
  batch_size: 8
  lr: 0.01
  min_images_per_person: 2
  scheduler: {warmup_epochs: 0.0}
""" if train else ""
    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text(f"""
backbone: tiny
prepare:
  images: {face_folder}
  min_images_per_person: 4
  split: "0.67,0.33,0.0"
  contact_sheet: 8
{train_section}
evaluate:
  pairs: pairs.txt
  data: {face_folder}
  far: 0.1            # 18 different-person pairs resolve FAR >= 1/18: deploy's threshold: auto needs that
  leak_free: false   # the tiny face folder has only the pairs' people
export:
  quantize: true
  calibration_limit: 24   # of the 36 prepared faces: the 12 beyond it are held out for parity
parity:
  limit: 16
bench:
  threads: [1]
  runs: 5
  warmup: 1
budget:
  max_int8_accuracy_drop: 100.0
  require_parity: false
  max_app_after_drop: 100.0
""" + (f"""
deploy:
  app: {REAL_APP}
  copy_to_run: true
  variant: int8
  threshold: auto
""" if deploy else ""))
    return cfg


@dataclass
class FinishedRun:
    """One pipeline run on the tiny config (deploy included), shared by the tests that take copies of it."""

    root: Path  # holds pipeline.yaml, pairs.txt and work/run
    result: Any  # the PipelineResult of the first, uncached run

    @property
    def run_dir(self) -> Path:
        return self.root / "work" / "run"

    def copy_to(self, dest: Path, run: str = "work/run") -> tuple[Path, Path]:
        """(config, run folder) copied under ``dest``. Keep the run folder two levels below ``dest``: prepare's
        labels.json stores the photo folder relative to itself."""
        for name in ("pipeline.yaml", "pairs.txt"):
            shutil.copy(self.root / name, dest / name)
        shutil.copytree(self.run_dir, dest / run, symlinks=True)
        return dest / "pipeline.yaml", dest / run


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, face_folder) -> FinishedRun:
    from toolkit.pipeline import run_pipeline

    root = tmp_path_factory.mktemp("pipeline")
    if not (REAL_APP / "app").is_dir():
        pytest.skip(f"the real app is not at {REAL_APP}")
    cfg = _config(root, face_folder, deploy=True)
    (root / "work").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root / "work")
        # Relative to the working directory, not to the config file.
        result = run_pipeline(cfg, Path("run"), progress=False)
    return FinishedRun(root, result)


@pytest.mark.slow
def test_pipeline_end_to_end_and_cached_rerun(finished_run, tmp_path):
    from toolkit.pipeline import run_pipeline

    result = finished_run.result
    assert result.run_dir == finished_run.run_dir.resolve()
    names = [s.name for s in result.stages]
    assert names == ["prepare", "base", "train", "export", "evaluate", "parity", "bench", "app_after"]
    assert not any(s.cached for s in result.stages)
    report = json.loads(result.report_json.read_text())
    models = [row["model"] for row in report["ladder"]]
    assert models == ["pytorch (start: random init)", "pytorch (shipped: fine-tuned)", "tflite float32", "tflite int8",
                      "app before deploy (int8)", "app after deploy (int8)"]
    # The float32 export computes what the checkpoint computes: the same verification accuracy.
    by = {row["model"]: row for row in report["ladder"]}
    assert by["tflite float32"]["accuracy_mean"] == pytest.approx(by["pytorch (shipped: fine-tuned)"]["accuracy_mean"],
                                                                  abs=1e-9)
    # The app after deploy: the patched real app's own cropAndResizeFace + convertBitmapToByteBuffer on the JVM
    # (box crop, bit-equal but for rare 1/255 steps): at most one pair decides differently from ftk's own crop.
    n_pairs = by["tflite int8"]["n_pairs"]
    assert abs(by["app after deploy (int8)"]["accuracy_mean"] - by["tflite int8"]["accuracy_mean"]) <= 1 / n_pairs
    after_report = json.loads((result.run_dir / by["app after deploy (int8)"]["report"]).read_text())
    notes = " ".join(after_report["notes"])
    assert after_report["crops"] == "app after deploy" and "cropAndResizeFace + convertBitmapToByteBuffer" in notes
    # The deploy went into a fresh copy of the real app under the run folder; the shared app is untouched.
    assert report["deploy"]["applied"] and report["deploy"]["preprocessing"]["mode"] == "patch"
    app_copy = result.run_dir / "app"
    assert (app_copy / REAL_SOURCES / "FtkFacePreprocessor.kt").is_file()
    assert not (REAL_APP / REAL_SOURCES / "FtkFacePreprocessor.kt").exists()
    assert "FtkFaceInput.bitmapFromImageProxy" in (app_copy / REAL_SOURCES / "ScannerActivity.kt").read_text()
    assert set(report["parity"]) == {"float32", "int8"}
    assert report["parity"]["float32"]["passed"], report["parity"]["float32"]["failures"]
    # Parity ran on the faces the export held out of calibration, and the report says so.
    for rep in report["parity"].values():
        assert rep["faces_source"].startswith("12 held-out faces") and rep["metrics"]["faces"] == 12, rep
    assert "faces: 12 held-out faces" in result.report_html.read_text()
    html = result.report_html.read_text()
    assert "Accuracy ladder" in html and "data:image/png;base64," in html
    assert "Deploy into the app" in html and "app after deploy (int8)" in html and ": compatible" in html
    # The top says why it passed: each budget line with its limit and measured value.
    assert [c["passed"] for c in report["budget_checks"]] == [True, True, None, None]
    top = html[:html.index("Accuracy ladder")]
    assert "PASS: all 2 budget lines hold" in top and "budget.max_int8_accuracy_drop" in top
    assert "loads on 2.12.0</span> <span class=\"muted\">(inferred from op versions" in html
    assert "ftk_tiny_int8.tflite</code>" in html.split("<details>")[0]  # the asset, outside the collapsed diff
    # The calibrated threshold sits where `ftk deploy --threshold auto` looks for it.
    int8 = result.run_dir / by["tflite int8"]["path"]
    assert (int8.with_name(int8.stem + ".eval") / "report.json").is_file()

    cfg, run_dir = finished_run.copy_to(tmp_path)
    again = run_pipeline(cfg, run_dir, progress=False)
    assert all(s.cached for s in again.stages), [s.name for s in again.stages if not s.cached]
    assert [r["accuracy_mean"] for r in json.loads(again.report_json.read_text())["ladder"]] == \
        [r["accuracy_mean"] for r in report["ladder"]]

    # A change to the parity settings redoes parity only.
    cfg.write_text(cfg.read_text().replace("limit: 16", "limit: 12"))
    third = run_pipeline(cfg, run_dir, progress=False)
    assert [s.name for s in third.stages if not s.cached] == ["parity"]

    # A cached stage whose outputs were deleted runs again, and only it.
    (run_dir / json.loads((run_dir / "bench" / "stage.json").read_text())["result"]["outputs"]["plot"]).unlink()
    fourth = run_pipeline(cfg, run_dir, progress=False)
    assert [s.name for s in fourth.stages if not s.cached] == ["bench"]


def _paths_into(text: str, *folders: Path) -> list[str]:
    """The absolute paths into ``folders`` that ``text`` (a file the pipeline wrote) still holds."""
    return [str(f) for f in folders if str(f.resolve()) in text]


def _local_refs(html: str) -> list[str]:
    """report.html's href/src targets that are files, not embedded images or web links."""
    refs = re.findall(r'(?:href|src)="([^"]+)"', html)
    return [urllib.parse.unquote(r) for r in refs if not r.startswith(("data:", "http:", "https:", "#"))]


@pytest.mark.slow
def test_a_moved_run_folder_reuses_every_stage(finished_run, tmp_path, monkeypatch, capsys):
    """`mv runs/a runs/b`, then `ftk pipeline CONFIG --out runs/b`: nothing runs again and the report still works."""
    from toolkit.cli import main

    cfg, first = finished_run.copy_to(tmp_path, "runs/a")
    moved = tmp_path / "runs" / "b"
    first.rename(moved)
    monkeypatch.chdir(tmp_path)
    main(["pipeline", str(cfg), "--out", "runs/b"])  # returns (exit code 0) only when the budget holds
    assert "budget: PASS" in capsys.readouterr().out

    report = json.loads((moved / "report.json").read_text())
    assert [(s["name"], s["cached"]) for s in report["stages"]] == \
        [(s.name, True) for s in finished_run.result.stages]
    original = json.loads(finished_run.result.report_json.read_text())
    assert [r["accuracy_mean"] for r in report["ladder"]] == [r["accuracy_mean"] for r in original["ladder"]]
    # The deploy (never cached) read the moved export and patched the app copy inside the moved folder.
    assert report["deploy"]["app_dir"] == "app" and report["deploy"]["model_path"] == "export/model_int8.tflite"
    assert (moved / "app" / REAL_SOURCES / "FtkFacePreprocessor.kt").is_file()
    # What the pipeline writes into the run folder names no absolute path into it (nor into where it came from).
    written = [moved / "report.json", moved / "report.html", *moved.glob("*/stage.json"),
               *moved.glob("parity/parity_*.json")]
    assert len(written) == 2 + len(report["stages"]) + 2
    for path in written:
        assert _paths_into(path.read_text(), moved, first, finished_run.run_dir) == [], path
    for row in report["ladder"]:
        assert (moved / row["path"]).is_file() and (moved / row["report"]).is_file(), row["model"]
    # report.html's links resolve from its own folder, and every image was found and embedded again.
    html = (moved / "report.html").read_text()
    refs = _local_refs(html)
    assert len(refs) >= len(report["ladder"]) + len(report["stages"])
    assert [r for r in refs if not (moved / r).exists()] == []
    assert html.count("data:image/png;base64,") == finished_run.result.report_html.read_text().count(
        "data:image/png;base64,") > 0


@pytest.mark.slow
def test_an_input_file_enters_the_key_by_content_not_by_name(finished_run, tmp_path):
    from toolkit.pipeline import run_pipeline

    cfg, run_dir = finished_run.copy_to(tmp_path)
    # The same pairs under another name: nothing runs again.
    (tmp_path / "pairs.txt").rename(tmp_path / "dev_pairs.txt")
    cfg.write_text(cfg.read_text().replace("pairs: pairs.txt", "pairs: dev_pairs.txt"))
    assert all(s.cached for s in run_pipeline(cfg, run_dir, progress=False).stages)
    # One pair fewer in that file: the evaluation runs again (parity too if the calibrated threshold moved, and the
    # app after deploy, measured on the same pairs); the stages that do not read the pairs stay cached.
    pairs = tmp_path / "dev_pairs.txt"
    pairs.write_text("".join(pairs.read_text().splitlines(keepends=True)[:-1]))
    result = run_pipeline(cfg, run_dir, progress=False)
    ran = [s.name for s in result.stages if not s.cached]
    assert ran[0] == "evaluate" and set(ran) <= {"evaluate", "parity", "app_after"}, ran
    assert result.ladder[0]["n_pairs"] == finished_run.result.ladder[0]["n_pairs"] - 1


@pytest.mark.slow
def test_a_budget_failure_exits_with_code_1(finished_run, tmp_path, monkeypatch, capsys):
    from toolkit.cli import main

    cfg, run_dir = finished_run.copy_to(tmp_path)
    # No int8 model can lose fewer than -1000 points: the budget fails whatever the tiny model measures.
    cfg.write_text(cfg.read_text().replace("max_int8_accuracy_drop: 100.0", "max_int8_accuracy_drop: -1000.0"))
    with pytest.raises(SystemExit) as exc:
        main(["pipeline", str(cfg), "--out", str(run_dir)])
    assert exc.value.code == 1
    assert "pipeline budget failed: int8 loses" in capsys.readouterr().err
    report = json.loads((run_dir / "report.json").read_text())
    assert report["passed"] is False and report["budget_failures"][0].endswith("(budget -1000.0)")
    assert all(s["cached"] for s in report["stages"])  # the budget is judged on the results, no stage reads it


@pytest.mark.slow
@pytest.mark.parametrize("where, stored", [("result.csv_path", "../../pairs.txt"), ("outputs.0", "/etc/hostname")])
def test_a_stage_record_pointing_outside_the_run_is_refused(finished_run, tmp_path, where, stored):
    from toolkit.errors import InputError
    from toolkit.pipeline import run_pipeline

    cfg, run_dir = finished_run.copy_to(tmp_path)
    marker = run_dir / "prepare" / "stage.json"
    record = json.loads(marker.read_text())
    field_name, key = where.split(".")
    record[field_name][int(key) if key.isdigit() else key] = stored
    marker.write_text(json.dumps(record))
    with pytest.raises(InputError, match="is not a path inside the run folder"):
        run_pipeline(cfg, run_dir, progress=False)


def test_run_relative_paths_stay_inside_the_run(tmp_path):
    from toolkit.errors import InputError
    from toolkit.pipeline import in_run, to_run_relative

    root = tmp_path / "run"
    # Inside the run: relative to it. Outside: as given, but for a path spelled through the run folder.
    stored = to_run_relative({"a": [str(root / "export" / "m.tflite"), root], "b": str(root / ".." / "photos"),
                              "c": "/elsewhere/../pairs.txt", "d": "not a path", "e": 3}, root)
    assert stored == {"a": ["export/m.tflite", "."], "b": str(tmp_path / "photos"), "c": "/elsewhere/../pairs.txt",
                      "d": "not a path", "e": 3}
    assert in_run(root, "export/m.tflite", "x") == root / "export" / "m.tflite"
    for bad in ("../outside", "export/../../outside", "/etc/passwd", "", None):
        with pytest.raises(InputError, match="is not a path inside the run folder"):
            in_run(root, bad, "x")


def test_pipeline_force_names_a_stage(tmp_path, face_folder):
    from toolkit.errors import InputError
    from toolkit.pipeline import run_pipeline

    with pytest.raises(InputError, match="--force evalute: no such stage \\(did you mean 'evaluate'\\?\\)"):
        run_pipeline(_config(tmp_path, face_folder), tmp_path / "run", force=("evalute",))


def test_pipeline_config_rejects_unknown_and_reserved_keys(tmp_path, face_folder):
    from toolkit.pipeline import load_pipeline_config

    cfg = _config(tmp_path, face_folder, train=False)
    cfg.write_text(cfg.read_text().replace("backbone: tiny", "backbone: tiny\nexprot: {}"))
    with pytest.raises(ConfigError, match="did you mean 'export'"):
        load_pipeline_config(cfg)
    cfg = _config(tmp_path, face_folder)
    cfg.write_text(cfg.read_text().replace("  epochs: 1", "  epochs: 1\n  out_dir: elsewhere"))
    with pytest.raises(ConfigError, match="set by the pipeline"):
        load_pipeline_config(cfg)
    cfg = _config(tmp_path, face_folder)
    cfg.write_text(cfg.read_text().replace("  epochs: 1", "  epocs: 1"))
    with pytest.raises(ConfigError, match="did you mean 'epochs'"):
        load_pipeline_config(cfg)


def test_budget_fails_when_the_app_after_deploy_loses_accuracy():
    from toolkit.pipeline import BudgetSection, DeploySection, budget_failures

    ladder = [{"model": "tflite int8", "accuracy_mean": 0.990},
              {"model": "app after deploy (int8)", "accuracy_mean": 0.985}]
    deploy = DeploySection(app=Path("app"))
    failures = budget_failures(BudgetSection(), ladder, {}, deploy)
    assert failures == ["the app after deploy loses 0.50 points vs tflite int8 (budget 0.3)"]
    ladder[1]["accuracy_mean"] = 0.988
    assert budget_failures(BudgetSection(), ladder, {}, deploy) == []


def test_the_shipped_model_is_chosen_off_the_test_pairs(tmp_path, lfw_pairs_dir):
    """The start ships unless fine-tuning verifies strictly better, on pairs that share no person with the test."""
    from toolkit.pipeline import check_selection_pairs, choose_shipped

    assert choose_shipped({"accuracy_mean": 0.990}, {"accuracy_mean": 0.988})[0] == "start"
    assert choose_shipped({"accuracy_mean": 0.990}, {"accuracy_mean": 0.990})[0] == "start"
    shipped, why = choose_shipped({"accuracy_mean": 0.95}, {"accuracy_mean": 0.97})
    assert shipped == "fine-tuned" and "95.00% to 97.00%" in why
    check_selection_pairs(lfw_pairs_dir / "pairsDevTrain.txt", lfw_pairs_dir / "pairsDevTest.txt")  # View 1
    with pytest.raises(ConfigError, match="shares .* identities with evaluate.pairs"):
        check_selection_pairs(lfw_pairs_dir / "pairsDevTest.txt", lfw_pairs_dir / "pairs.txt")


def test_the_html_report_links_and_embeds_only_files_of_the_run(tmp_path):
    from PIL import Image

    from toolkit.html_report import write_html_report

    run = tmp_path / "run"
    (run / "prepare").mkdir(parents=True)
    (run / "export" / "model int8.eval").mkdir(parents=True)
    (run / "export" / "model int8.eval" / "report.json").write_text("{}")
    Image.new("RGB", (4, 4)).save(run / "prepare" / "sheet.png")
    Image.new("RGB", (4, 4)).save(tmp_path / "outside.png")
    report = {"passed": True, "prepare": {"contact_sheet_path": "prepare/sheet.png"},
              "ladder": [{"model": "tflite int8", "report": "export/model int8.eval/report.json",
                          "scores_png": "../outside.png"}],
              "stages": [{"name": "prepare", "cached": True, "seconds": 1.0, "key": "ab"}]}
    html = write_html_report(report, run / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 1  # the contact sheet; nothing from outside the run
    assert 'href="export/model%20int8.eval/report.json">tflite int8</a>' in html
    assert "prepare/stage.json" not in html  # not there: the stage's name as plain text, no dead link


def _synthetic_report() -> dict[str, Any]:
    """A report.json as the main job writes it: three PyTorch rows (two with the same curve), a failed budget line."""
    from toolkit.pipeline import BudgetSection, DeploySection, budget_checks

    curve = {"fpr": [0.0, 0.01, 1.0], "tpr": [0.5, 0.9, 1.0]}
    rows = [("pytorch (start: pretrained)", 0.990, curve), ("pytorch (fine-tuned, not shipped)", 0.988, curve | {
        "tpr": [0.4, 0.9, 1.0]}), ("pytorch (shipped: the start)", 0.990, curve), ("tflite float32", 0.990, curve),
            ("tflite int8", 0.980, {"fpr": [0.0, 0.01, 1.0], "tpr": [0.45, 0.88, 1.0]}),
            ("app before deploy (int8)", 0.561, {"fpr": [0.0, 0.01, 1.0], "tpr": [0.01, 0.05, 1.0]})]
    ladder = [{"model": m, "accuracy_mean": acc, "accuracy_std": 0.01, "auc": 0.99, "eer": 0.02, "far": 0.001,
               "tar_at_far": {"0.01": 0.9, "0.001": 0.5}, "threshold": 0.33, "n_pairs": 1000, "roc_points": roc,
               "report": f"evaluate/{m.replace(' ', '_')}/report.json"} for m, acc, roc in rows]
    for row, acc in zip(ladder[:3], (0.0771, 0.0981, 0.0771)):
        row.update(classification_accuracy=acc, classification_faces=450, classification_classes=62)
    budget = BudgetSection(max_int8_accuracy_drop=0.5)
    parity = {"int8": {"passed": True, "metrics": {}}}
    return {"passed": False, "config": {"prepare": {"min_images_per_person": 20}, "evaluate": {"pairs": "p.txt"}},
            "budget_checks": budget_checks(budget, ladder, parity, DeploySection(app=Path("app"))),
            "ladder": ladder, "parity": parity,
            "prepare": {"n_images": 13233, "n_faces": 3023, "n_rejected": 10210, "n_identities": 62,
                        "reject_reasons": {"too few faces for --min-images-per-person": 10208, "no face detected": 2},
                        "split_counts": {"train": 2101, "val": 461, "test": 461, "holdout": 0}},
            "export": {"artifacts": {p: {"path": f"export/model_{p}.tflite", "size_bytes": 2**20, "min_runtime": "2.3.0",
                                         "peak_rss_mib": 4167} for p in ("float32", "int8")}},
            "deploy": {"variant": "int8", "asset": "app/src/main/assets/ftk_mobilefacenet_int8.tflite",
                       "threshold": 0.271109, "threshold_source": "auto", "diff": "--- a\n+++ b",
                       "runtime_verify": {"tensorflow_version": "2.12.0", "passed": True},
                       "previous": {"model_files": ["mobile_face_net.tflite"], "threshold": 0.98}},
            "stages": []}


def test_the_html_report_says_why_it_failed_and_names_every_row(tmp_path):
    """The top lists each budget line (limit, value, verdict); rows, rejects, splits and runtime say what they are."""
    from toolkit.html_report import _distinct_curves, write_html_report

    report = _synthetic_report()
    run = tmp_path / "run"
    (run / "evaluate" / "pytorch_(fine-tuned,_not_shipped)").mkdir(parents=True)
    (run / "evaluate" / "pytorch_(fine-tuned,_not_shipped)" / "report.json").write_text("{}")
    report["ladder"][1]["report"] = "evaluate/pytorch_(fine-tuned,_not_shipped)/report.json"
    html = write_html_report(report, run / "report.html").read_text()
    top = html[:html.index("Accuracy ladder")]
    assert "FAIL: 1 of 2 budget lines fail" in top
    assert "<td>verification accuracy int8 loses vs float32</td><td>&lt;= 0.5 points (budget.max_int8_accuracy_drop)" \
           "</td><td>1.00 points (99.00 -&gt; 98.00 %)</td><td><span class=\"fail\">fail</span>" in top
    assert "accuracy the app after deploy loses vs tflite int8" in top and "not measured" in top
    assert "pytorch (start: pretrained)" in html and "pytorch (shipped: the start)" in html
    assert "450 faces over 62 classes, chance 1.61 %" in html
    assert "images of people with fewer than 20 usable faces (min_images_per_person)</td><td>10208" in html
    assert "<th>train</th><th>val</th><th>test</th>" in html and "{&quot;train" not in html  # a table, not JSON
    assert "pipeline RSS MiB" in html and "whole pipeline process" in html
    assert "ran on TensorFlow Lite 2.12.0" in html  # the deploy's runtime check ran on the int8 file
    assert "loads on 2.12.0</span> <span class=\"muted\">(inferred from op versions" in html  # float32: not run
    before_diff = html.split("<details>")[0]
    assert "ftk_mobilefacenet_int8.tflite</code></td><td>0.271109</td><td>calibrated by ftk evaluate" in before_diff
    assert 'href="evaluate/pytorch_(fine-tuned,_not_shipped)/report.json"' in html and "%2C" not in html
    # Identical curves are drawn once, under all their names; the app's own crop keeps its curve.
    names = [[r["model"] for r in rows] for _, rows in _distinct_curves(report["ladder"])]
    assert names == [["pytorch (start: pretrained)", "pytorch (shipped: the start)", "tflite float32"],
                     ["pytorch (fine-tuned, not shipped)"], ["tflite int8"], ["app before deploy (int8)"]]
