"""Every `ftk ...` command shown in README.md and docs/*.md runs in the suite, or is checked against the CLI.

``documented_commands()`` takes each line that starts with ``ftk`` from the fenced code blocks (continuation lines
joined, trailing ``# comments`` dropped). Each must have an entry in ``ADAPTED``, keyed by its text, or
``test_every_documented_command_is_covered`` fails: a command added to the docs must be added here.

- A list of runs: the same command adapted only to small limits (the tiny model and its export, 6 LFW people with 6
  photos each, a 36-pair file, ``--runs 3``), run for real through ftk's entry point, in the order of ``ADAPTED``,
  in one folder laid out as a fresh clone sees it (``train/configs/``, ``../shared``, ``photos/``, ``pairs.txt``,
  ``lfw-deepfunneled/``). The export that ``export/`` holds is the session's tiny export (``export_dir``).
- ``Flags(reason)``: too slow for this test (a real model's export, the whole pipeline, an adb phone, the JVM);
  only its subcommand and each flag it names are checked against the CLI (a --help-level check). The reason names
  the test that runs it for real.

Every documented command also gets that flag check. The runs share detections and crops through the session cache.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, write_face_pairs
from tests.deploy.conftest import FIXTURE_APP
from tests.unit.export_helpers import run_cli

pytestmark = pytest.mark.shared

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


@dataclass(frozen=True)
class Flags:
    """Only the subcommand and its flags are checked; ``reason`` says why and which test runs it."""

    reason: str


@dataclass(frozen=True)
class Run:
    """An adapted invocation (ftk's arguments, formatted with the test's paths), its exit code and a text that its
    output (stdout + stderr) must hold."""

    args: str
    code: int = 0
    says: str = ""


EXPORT_ELSEWHERE = Flags("exporting a real model takes minutes: tests/unit/test_export.py and the export_dir "
                         "fixture export the tiny model (export/ here); test_export_inception.py and "
                         "test_mobilefacenet.py the real ones")
ADB = Flags("needs a phone: tests/bench/test_bench_adb.py runs it against a real adbd in a network namespace")
PIPELINE = Flags("the whole pipeline: tests/integration/test_pipeline.py runs it on the tiny model")

# Documented command -> what the suite runs. Insertion order is the order the runs happen in.
ADAPTED: dict[str, list[Run] | Flags] = {
    # README "Quick start"; a fresh clone has no runs/data/lfw_faces.csv: the error says what makes it.
    "ftk prepare photos/ --out data/faces.csv --min-images-per-person 20": [
        Run("prepare photos/ --out data/faces.csv --min-images-per-person 5 --quiet")],
    "ftk train --config train/configs/lfw_leakfree_mobilefacenet.yaml": [
        Run("train --config repo/train/configs/lfw_leakfree_mobilefacenet.yaml", 2, "train/runs.sh makes"),
        # What train/runs.sh does first (5 faces per person, 80/20); the NAME.yaml line below then trains on it (a
        # MobileFaceNet epoch would cost this test 20 s more: tests/unit/test_train.py trains the configs' paths).
        Run("prepare lfw-deepfunneled --out repo/runs/data/lfw_faces.csv --min-images-per-person 5 --split 0.8,0.2 "
            "--quiet")],
    "ftk train --config train/configs/NAME.yaml [--resume] [--out DIR] [--weights PATH] [--epochs N] [--device "
    "auto|cpu|cuda] [--overwrite] [--quiet] [--json]": [
        Run("train --config repo/train/configs/tiny_smoke.yaml --out runs/x --epochs 1 --device cpu --quiet")],
    "ftk evaluate runs/x/best.pt --pairs pairsDevTest.txt --data lfw-deepfunneled --csv data/faces.csv": [
        Run("evaluate runs/x/best.pt --pairs pairsDevTest.txt --data lfw-deepfunneled --csv data/faces.csv "
            "--quiet", 0, "classification  top-1"),
        # runs.sh's CSV has no test rows: verification still runs, classification is skipped with a note. The
        # default ./best.eval/ holds the report just written: the error says so.
        Run("evaluate runs/x/best.pt --pairs pairsDevTest.txt --data lfw-deepfunneled --csv "
            "repo/runs/data/lfw_faces.csv --quiet", 2, "already exists"),
        Run("evaluate runs/x/best.pt --pairs pairsDevTest.txt --data lfw-deepfunneled --csv "
            "repo/runs/data/lfw_faces.csv --out eval/runs_sh --quiet", 0, "classification skipped")],
    "ftk evaluate run/best.pt --pairs ../shared/data/lfw/pairsDevTest.txt --data ../shared/data/lfw/lfw-deepfunneled "
    "--csv data/faces.csv [--far 1e-3] [--out DIR] [--limit-pairs N] [--pick center|confidence] [--json] [--quiet] "
    "[--overwrite]": [
        Run("evaluate runs/x/best.pt --pairs pairsDevTest.txt --data lfw-deepfunneled --csv data/faces.csv --far 1e-3 "
            "--out eval/x --limit-pairs 20 --pick center --json", 0, '"auc"')],
    "ftk prepare photos/ --out data/faces.csv --min-images-per-person 20 --split 0.7,0.15,0.15 --holdout-identities "
    "0.1 --seed 0 [--pick center|confidence] [--contact-sheet 36] [--overwrite] [--json] [--quiet]": [
        Run("prepare photos/ --out data/faces.csv --min-images-per-person 5 --split 0.7,0.15,0.15 "
            "--holdout-identities 0.1 --seed 0 --pick center --contact-sheet 8 --overwrite --json", 0, '"n_faces"')],
    # A published state_dict: evaluated from this folder, its report lands here, not in the weights' folder.
    "ftk evaluate mobilefacenet.pt --backbone mobilefacenet --align --pairs pairs.txt --data lfw-deepfunneled": [
        Run("evaluate weights/mobilefacenet.pt --backbone mobilefacenet --align --pairs pairs.txt "
            "--data lfw-deepfunneled --quiet", 0, "/mobilefacenet.eval/report.json")],
    "ftk evaluate ../shared/models/mobilefacenet-ms1m/mobilefacenet.pt --backbone mobilefacenet --pairs "
    "../shared/data/lfw/pairs.txt": [
        Run("evaluate shared/models/mobilefacenet-ms1m/mobilefacenet.pt --backbone mobilefacenet --pairs pairs.txt "
            "--data lfw-deepfunneled --out eval/mfn_align --quiet")],
    "ftk evaluate ../shared/models/mobilefacenet-ms1m/mobilefacenet.pt --backbone mobilefacenet --box-crop --pairs "
    "../shared/data/lfw/pairs.txt": Flags("the --align run above with the box crop (11 s of new crops): "
                                          "tests/integration/test_mobilefacenet.py measures both crops"),
    "ftk evaluate ../shared/models/mobilefacenet-ms1m/mobilefacenet.pt --backbone mobilefacenet --align --pairs "
    "../shared/data/lfw/pairs.txt --out /tmp/mfn/eval/pt_align": [
        Run("evaluate shared/models/mobilefacenet-ms1m/mobilefacenet.pt --backbone mobilefacenet --align "
            "--pairs pairs.txt --data lfw-deepfunneled --out mfn/eval/pt_align --quiet")],
    "ftk init-checkpoint --out ckpt.pt --backbone mobilefacenet --weights mobilefacenet.pt": [
        Run("init-checkpoint --out mfn.pt --backbone mobilefacenet --weights weights/mobilefacenet.pt")],
    "ftk init-checkpoint --backbone mobilefacenet --weights ../shared/models/mobilefacenet-ms1m/mobilefacenet.pt "
    "--out mfn.pt [--num-classes N]": [
        Run("init-checkpoint --backbone mobilefacenet --weights shared/models/mobilefacenet-ms1m/mobilefacenet.pt "
            "--out mfn4.pt --num-classes 4")],
    "ftk export ckpt.pt --out export/ --quantize int8 --faces data/faces.csv": EXPORT_ELSEWHERE,
    "ftk export CHECKPOINT --out DIR [--quantize int8|float16|int8,float16 --faces DIR_OR_CSV] [--calibration-limit "
    "300] [--calibration-batch 1] [--keep-float LAYER[,LAYER]] [--pick center|confidence] [--input-size N] "
    "[--overwrite] [--json] [--quiet]": EXPORT_ELSEWHERE,
    "ftk export mfn.pt --out mfn-export --quantize int8 --faces FACES_DIR": EXPORT_ELSEWHERE,
    "ftk evaluate mfn-export/model_int8.tflite --box-crop --pairs ../shared/data/lfw/pairs.txt --out "
    "/tmp/mfn/eval/i8_box": Flags("needs the MobileFaceNet int8 export (minutes): test_mobilefacenet.py evaluates it"),
    # export/ is the tiny checkpoint's export (float32 + int8, its held-out parity faces); ckpt.pt that checkpoint.
    "ftk parity-check export/model_int8.tflite --checkpoint ckpt.pt": [
        Run("parity-check export/model_int8.tflite --checkpoint ckpt.pt", 0, "PASS")],
    "ftk parity-check MODEL.tflite --checkpoint CKPT [--faces DIR_OR_CSV] [--limit 64] [--tolerance NAME=VALUE ...]"
    " [--precision float32|float16|int8] [--threshold T] [--layers [--layers-top 15]] [--threads N] [--pick "
    "center|confidence] [--json] [--quiet] [--out parity.json [--overwrite]]": [
        Run("parity-check export/model_float32.tflite --checkpoint ckpt.pt --faces photos --limit 8 --tolerance "
            "min_cosine=0.999 --precision float32 --threshold 0.5 --threads 1 --pick center --quiet --out "
            "parity.json --overwrite", 0, "PASS")],
    "ftk bench export/model_float32.tflite export/model_int8.tflite --threads 1 --threads 2 --checkpoint ckpt.pt "
    "--out bench/": [
        Run("bench export/model_float32.tflite export/model_int8.tflite --threads 1 --threads 2 --checkpoint ckpt.pt "
            "--out bench/ --runs 3 --warmup 1 --quiet", 0, "wrote bench/bench.json")],
    "ftk bench export/model_float32.tflite export/model_int8.tflite --threads 1 --threads 2 --runs 100 --checkpoint "
    "run/checkpoint.pt --out bench/ [--table-csv bench/bench.csv] [--json] [--quiet]": [
        Run("bench export/model_float32.tflite export/model_int8.tflite --threads 1 --threads 2 --runs 3 --checkpoint "
            "ckpt.pt --out bench2/ --table-csv bench2/bench.csv --json --quiet --no-rss", 0, '"entries"')],
    "ftk bench export/model_int8.tflite --device adb --serial 192.168.1.20:5555 --benchmark-binary benchmark_model":
        ADB,
    "ftk bench model_int8.tflite --device adb --serial 192.168.1.7:5555 [--serial R58M...] --benchmark-binary "
    "~/tflite/arm64/benchmark_model --threads 1 --threads 4 --repeats 3 --cooldown 5 --out bench/": ADB,
    "ftk bench after/model_float32.tflite after/model_float16.tflite after/model_int8.tflite --threads 1 --threads 2"
    " --runs 100 --checkpoint mfn.pt --no-rss": Flags(
        "the measurement behind docs/export.md's table needs the MobileFaceNet float16/int8 exports (minutes); the "
        "runs above bench the tiny export with the same flags"),
    "ftk bench after/model_{float32,float16,int8}.tflite irv1/model_float32.tflite irv1/model_float16.tflite "
    "irv1/int8.tflite --threads 1 --threads 2 --runs 50 --checkpoint mfn.pt --no-rss": Flags(
        "needs the MobileFaceNet and InceptionResnetV1 exports of that measurement (minutes)"),
    # The int8 file's own threshold, calibrated on the 18 different-person pairs here: FAR 0.1 is what they resolve.
    "ftk evaluate export/model_int8.tflite --pairs ../shared/data/lfw/pairs.txt": [
        Run("evaluate export/model_int8.tflite --pairs pairs.txt --far 0.1 --quiet", 0, "model_int8.eval")],
    "ftk evaluate someone_elses.tflite --input-size 112 --normalization 127.5,128 --pairs ... --data ...": [
        Run("evaluate foreign/model.tflite --input-size 32 --normalization 0,1 --pairs pairs.txt --data "
            "lfw-deepfunneled --out eval/foreign --quiet")],
    "ftk evaluate their.tflite --input-size 112 --normalization 127.5,128 --pairs ...": [
        Run("evaluate foreign/model.tflite --input-size 32 --normalization 0,1 --pairs pairs.txt --out "
            "eval/their --quiet")],
    "ftk evaluate export/model_int8.tflite --pairs pairsDevTest.txt --simulate-app after --app "
    "~/src/face-data-matching-app": Flags(
        "compiles the patched real app with kotlinc and runs its own crop code on the JVM (minutes): "
        "tests/integration/test_pipeline.py's app_after stage and tests/deploy/test_app_on_jvm.py run it"),
    "ftk deploy export/ --app ~/src/face-data-matching-app --variant int8 --threshold auto --far 0.01 --dry-run": [
        Run("deploy export/ --app FaceApp --variant int8 --threshold auto --far 0.1 --dry-run", 0,
            "dry run: ")],
    "ftk deploy EXPORT_DIR_OR_MODEL --app APP_DIR [--variant int8|float32|float16] [--threshold VALUE|auto] "
    "[--far 1e-3] [--dry-run] [--bump-runtime VERSION] [--verify-runtime] [--asset-name NAME] [--app-code "
    "patch|kit|none] [--json]": [Run("deploy export/ --app FaceApp --variant int8 --threshold auto --far 0.1", 0, "deployed ")],
    "ftk deploy --revert --app APP_DIR [--force]": [Run("deploy --revert --app FaceApp")],
    # kit after the revert: it adds ftk's files and changes no existing one (nothing below touches the app).
    "ftk deploy export/ --app ~/src/OtherApp --app-code kit": [
        Run("deploy export/ --app FaceApp --app-code kit --threshold 0.5", 0, "--app-code kit")],
    "ftk compare a.jpg b.jpg c.jpg --model export/model_int8.tflite --plot grid.png": [
        Run("compare a.jpg b.jpg c.jpg --model export/model_int8.tflite --plot grid.png", 0, "same")],
    "ftk compare IMG1 IMG2 [IMG3 ...] --model CHECKPOINT_OR_TFLITE [--threshold T] [--far F] [--json] [--pick "
    "center|confidence] [--plot grid.png] [--overwrite] [--backbone NAME] [--align/--box-crop]": [
        Run("compare a.jpg b.jpg c.jpg --model ckpt.pt --threshold 0.5 --json --pick center --plot grid.png "
            "--overwrite", 0, '"scores"')],
    "ftk match probe.jpg --gallery people/ --model export/model_int8.tflite --save-gallery gallery.npz": [
        Run("match probe.jpg --gallery people/ --model export/model_int8.tflite --save-gallery gallery.npz")],
    "ftk match PROBE_IMG --gallery DIR_OR_NPZ --model CHECKPOINT_OR_TFLITE [--save-gallery OUT.npz] [--overwrite] "
    "[--top-k K] [--threshold T] [--far F] [--pick center|confidence] [--json] [--quiet]": [
        Run("match probe.jpg --gallery gallery.npz --model export/model_int8.tflite --top-k 2 --threshold 0.5 "
            "--pick center --json --quiet", 0, '"top"')],
    "ftk info export/": [Run("info export/", 0, "model_int8.tflite")],
    "ftk cache": [Run("cache")],
    "ftk pipeline CONFIG.yaml runs all of it, cached per stage, and writes report.html": PIPELINE,
    "ftk pipeline CONFIG.yaml --out RUN_DIR [--force STAGE ...] [--json]": PIPELINE,
}


def documented_commands() -> dict[str, str]:
    """Each ``ftk ...`` line of a fenced block in the docs (continuations joined, comments dropped) -> its file."""
    found: dict[str, str] = {}
    for doc in DOCS:
        for block in re.findall(r"^```[^\n]*\n(.*?)^```", doc.read_text(), re.S | re.M):
            for command in _commands_in(block):
                found.setdefault(command, doc.name)
    return found


def _commands_in(block: str) -> list[str]:
    commands: list[str] = []
    joining = False
    for raw in block.splitlines():
        line = re.sub(r"\s+#\s.*$", "", raw).rstrip()
        continued = joining or (commands and raw[:1].isspace() and line.strip().startswith(("[", "--")))
        if re.match(r"(\$ )?ftk\s", line.strip()) and not joining:
            commands.append(line.strip().removeprefix("$ "))
        elif continued and commands:
            commands[-1] += " " + line.strip()
        else:
            continue
        joining = commands[-1].endswith("\\")
        commands[-1] = " ".join(commands[-1].rstrip("\\").split())
    return commands


def test_every_documented_command_is_covered():
    documented = documented_commands()
    missing = [f"{where}: {command}" for command, where in documented.items() if command not in ADAPTED]
    assert not missing, "documented commands with no entry in ADAPTED:\n" + "\n".join(missing)
    stale = [command for command in ADAPTED if command not in documented]
    assert not stale, "ADAPTED entries no longer in the docs:\n" + "\n".join(stale)


def _flags(command: str) -> tuple[str, list[str]]:
    words = command.replace("[", " ").replace("]", " ").split()
    flags = [w.split("=")[0] for w in words[2:] if w.startswith("-") and w != "-"]
    return words[1], [f for part in flags for f in part.split("/")]  # --align/--box-crop: two flags


@pytest.mark.parametrize("command", list(ADAPTED))
def test_documented_flags_exist(command):
    """The --help-level check, for every documented command: its subcommand and each flag it names exist."""
    import click

    from toolkit.cli import cli

    name, flags = _flags(command)
    sub = cli.get_command(click.Context(cli), name)
    assert sub is not None, f"no command {name!r}: {command}"
    known = {opt for p in sub.params for opt in (*p.opts, *p.secondary_opts)} | {"--help", "-h"}
    assert not [f for f in flags if f not in known], f"{command}: unknown flags {set(flags) - known}"


@pytest.fixture
def clone(tmp_path, monkeypatch, face_folder, shared_dir, export_dir, ref_ckpt, tiny_checkpoint_export):
    """A folder as the docs' commands expect it: the repo's train/configs (their data paths point into it), the
    shared data beside it, 6 people's photos, a 36-pair file, the tiny export and its checkpoint, the example app."""
    from toolkit.tflite.metadata import remove_contract

    (tmp_path / "repo" / "train").mkdir(parents=True)
    shutil.copytree(REPO_ROOT / "train" / "configs", tmp_path / "repo" / "train" / "configs")
    smoke = tmp_path / "repo" / "train" / "configs" / "tiny_smoke.yaml"
    smoke.write_text(smoke.read_text().replace("min_images_per_person: 20", "min_images_per_person: 4"))
    (tmp_path / "shared").symlink_to(shared_dir)  # the configs name ../../../shared from repo/train/configs
    for name in ("photos", "lfw-deepfunneled", "people"):
        (tmp_path / name).symlink_to(face_folder)
    for name in ("pairs.txt", "pairsDevTest.txt"):
        write_face_pairs(tmp_path / name, face_folder)
    people = sorted(p for p in face_folder.iterdir() if p.is_dir())
    for name, image in zip(("a.jpg", "b.jpg", "c.jpg", "probe.jpg"),
                           [sorted(people[0].glob("*.jpg"))[k] for k in (0, 1)] + [sorted(people[1].glob("*.jpg"))[0],
                                                                                    sorted(people[0].glob("*.jpg"))[5]]):
        shutil.copy(image, tmp_path / name)
    shutil.copytree(export_dir, tmp_path / "export")
    shutil.copy(ref_ckpt, tmp_path / "ckpt.pt")
    (tmp_path / "foreign").mkdir()
    shutil.copy(tiny_checkpoint_export / "model_float32.tflite", tmp_path / "foreign" / "model.tflite")
    remove_contract(tmp_path / "foreign" / "model.tflite")  # someone else's file: no ftk contract inside
    weights = tmp_path / "weights"
    weights.mkdir()
    shutil.copy(shared_dir / "models" / "mobilefacenet-ms1m" / "mobilefacenet.pt", weights)
    weights.chmod(0o555)  # a model store nobody pointed --out at (root could still write: the test checks)
    shutil.copytree(FIXTURE_APP, tmp_path / "FaceApp", symlinks=True)
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    weights.chmod(0o755)


@pytest.mark.slow
def test_documented_commands_run(clone, capsys):
    """The runs of ADAPTED, in order, each with its exit code and a line of its output."""
    for command, runs in ADAPTED.items():
        if isinstance(runs, Flags):
            continue
        for run in runs:
            code, out, err = run_cli(run.args.split(), capsys)
            assert code == run.code and run.says in out + err, (
                f"documented: {command}\nran: ftk {run.args}\nexit {code}\n{out}\n{err}")
    # Nothing was written beside the weights the user evaluated without --out; the report is here.
    assert sorted(p.name for p in (clone / "weights").iterdir()) == ["mobilefacenet.pt"]
    assert (clone / "mobilefacenet.eval" / "report.json").is_file()
