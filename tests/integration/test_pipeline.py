"""The main job end to end on a tiny model and real LFW faces: every stage, the report, and stage caching."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import FACE_PEOPLE
from tests.deploy.conftest import FIXTURE_APP
from toolkit.errors import ConfigError


def _write_pairs(path: Path, root: Path) -> None:
    """A small LFW-format pairs file over the face_folder people (one set, no header)."""
    people = [p for p in FACE_PEOPLE if (root / p).is_dir()]
    lines = []
    for person in people:
        images = sorted((root / person).glob("*.jpg"))
        for a, b in ((0, 1), (2, 3), (4, 5)):
            if b < len(images):
                ia, ib = (int(images[k].stem.rsplit("_", 1)[1]) for k in (a, b))
                lines.append(f"{person}\t{ia}\t{ib}")
    n_same = len(lines)
    for k in range(n_same):
        p1, p2 = people[k % len(people)], people[(k + 1) % len(people)]
        i1 = int(sorted((root / p1).glob("*.jpg"))[k % 3].stem.rsplit("_", 1)[1])
        i2 = int(sorted((root / p2).glob("*.jpg"))[(k + 1) % 3].stem.rsplit("_", 1)[1])
        lines.append(f"{p1}\t{i1}\t{p2}\t{i2}")
    path.write_text("\n".join(lines) + "\n")


def _config(tmp_path: Path, face_folder: Path, train: bool = True, deploy: bool = False) -> Path:
    pairs = tmp_path / "pairs.txt"
    _write_pairs(pairs, face_folder)
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
  far: 0.01
  leak_free: false   # the tiny face folder has only the pairs' people
export:
  quantize: true
  calibration_limit: 32
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
  app: {FIXTURE_APP}
  copy_to_run: true
  variant: int8
  threshold: auto
""" if deploy else ""))
    return cfg


@pytest.mark.slow
def test_pipeline_end_to_end_and_cached_rerun(tmp_path, face_folder, monkeypatch):
    from toolkit.pipeline import run_pipeline

    cfg = _config(tmp_path, face_folder, deploy=True)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    run_dir = Path("run")  # relative to the working directory, not to the config file
    result = run_pipeline(cfg, run_dir, progress=False)
    names = [s.name for s in result.stages]
    assert names == ["prepare", "base", "train", "export", "evaluate", "parity", "bench"]
    assert not any(s.cached for s in result.stages)
    report = json.loads(result.report_json.read_text())
    models = [row["model"] for row in report["ladder"]]
    assert models == ["pytorch (start)", "pytorch", "tflite float32", "tflite int8", "app before deploy (int8)",
                      "app after deploy (int8)"]
    # The float32 export computes what the checkpoint computes: the same verification accuracy.
    by = {row["model"]: row for row in report["ladder"]}
    assert by["tflite float32"]["accuracy_mean"] == pytest.approx(by["pytorch"]["accuracy_mean"], abs=1e-9)
    # The app after deploy crops with the generated Kotlin (box crop, bit-equal but for rare 1/255 steps): at
    # most one pair decides differently from ftk's own crop; the app's own crop is another input altogether.
    n_pairs = by["tflite int8"]["n_pairs"]
    assert abs(by["app after deploy (int8)"]["accuracy_mean"] - by["tflite int8"]["accuracy_mean"]) <= 1 / n_pairs
    after_report = json.loads(Path(by["app after deploy (int8)"]["report"]).read_text())
    assert after_report["crops"] == "app after deploy" and "Kotlin" in " ".join(after_report["notes"])
    # The deploy went into a fresh copy of the example app under the run folder; the shipped app is untouched.
    assert report["deploy"]["applied"] and report["deploy"]["preprocessing"]["patched"]
    app_copy = work / "run" / "app"
    assert (app_copy / "app/src/main/java/com/example/facerecognition/FtkFacePreprocessor.kt").is_file()
    assert not (FIXTURE_APP / "app/src/main/java/com/example/facerecognition/FtkFacePreprocessor.kt").exists()
    assert "FtkFaceInput.fromImageProxy" in (app_copy / "app/src/main/java/com/example/facerecognition/"
                                             "ScannerActivity.kt").read_text()
    assert set(report["parity"]) == {"float32", "int8"}
    assert report["parity"]["float32"]["passed"], report["parity"]["float32"]["failures"]
    html = result.report_html.read_text()
    assert "Accuracy ladder" in html and "data:image/png;base64," in html
    assert "Deploy into the app" in html and "app after deploy (int8)" in html and ": compatible" in html
    # The calibrated threshold sits where `ftk deploy --threshold auto` looks for it.
    int8 = Path(by["tflite int8"]["path"])
    assert (int8.with_name(int8.stem + ".eval") / "report.json").is_file()

    again = run_pipeline(cfg, run_dir, progress=False)
    assert all(s.cached for s in again.stages)
    assert [r["accuracy_mean"] for r in json.loads(again.report_json.read_text())["ladder"]] == \
        [r["accuracy_mean"] for r in report["ladder"]]

    # A change to the parity settings redoes parity only.
    cfg.write_text(cfg.read_text().replace("limit: 16", "limit: 12"))
    third = run_pipeline(cfg, run_dir, progress=False)
    ran = [s.name for s in third.stages if not s.cached]
    assert ran == ["parity"]

    # The pairs file is an input of the evaluation by content, not by name: one pair fewer reruns evaluate.
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("".join(pairs.read_text().splitlines(keepends=True)[:-1]))
    # A cached stage whose outputs were deleted runs again.
    Path(json.loads((work / "run" / "bench" / "stage.json").read_text())["result"]["outputs"]["plot"]).unlink()
    fourth = run_pipeline(cfg, run_dir, progress=False)
    ran = [s.name for s in fourth.stages if not s.cached]
    assert "evaluate" in ran and "bench" in ran and "train" not in ran and "export" not in ran


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
