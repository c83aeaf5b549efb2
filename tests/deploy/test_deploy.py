"""ftk deploy against a fixture Android app checkout (copied to tmp per test) with real tiny .tflite exports."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.deploy.conftest import GRADLE_VARIANTS, write_manifest
from toolkit.deploy import CompatibilityError, deploy, revert
from toolkit.deploy.android import find_app
from toolkit.deploy.gradle import find_runtime
from toolkit.errors import InputError, ModelFileError
from toolkit.models.registry import default_spec

SCANNER = "app/src/main/java/com/example/facerecognition/ScannerActivity.kt"
CHECK = "app/src/main/java/com/example/facerecognition/CheckRecordsActivity.kt"
ASSETS = "app/src/main/assets"
SOURCES = "app/src/main/java/com/example/facerecognition"
USER_INPUT = f"{SOURCES}/UserInputActivity.kt"


def ftk(*args: str) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess (exit codes and the error line as a user sees them)."""
    return subprocess.run([sys.executable, "-m", "toolkit.cli", *args], capture_output=True, text=True, timeout=300)


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under root (the deploy state folder excluded)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and ".ftk-deploy" not in p.parts}


def test_patch_then_noop_then_revert(tiny_export, android_app):
    spec = default_spec("tiny")
    before = snapshot(android_app)
    original_scanner = (android_app / SCANNER).read_text()

    result = deploy(tiny_export, android_app, variant="int8", threshold=0.42)
    assert result.applied and result.compatibility.compatible
    asset = android_app / ASSETS / "ftk_tiny_int8.tflite"
    assert asset.read_bytes() == (tiny_export / "model_int8.tflite").read_bytes()
    assert (android_app / ASSETS / "mobile_face_net.tflite").read_bytes() == \
        (Path(__file__).parents[1] / "fixtures/android_app/FaceRecognition" / ASSETS / "mobile_face_net.tflite").read_bytes()

    scanner = (android_app / SCANNER).read_text()
    check = (android_app / CHECK).read_text()
    # Values change, trailing comments and spacing stay exactly as they were.
    assert f"    private val inputSize = {spec.input_size} // 160\n" in scanner
    assert f"    private val embeddingDim = {spec.embedding_dim} // 512 //  // 128 // this is the output size\n" in scanner
    assert f"    private val inputSize = {spec.input_size}   // 160\n" in check
    assert f"    private val embeddingDim = {spec.embedding_dim}  // 512 // 128 // this is the output size\n" in check
    assert "        val threshold = 0.42\n" in check
    # Only the active loader changed; the commented-out alternatives are untouched.
    assert 'FileUtil.loadMappedFile(context, "ftk_tiny_int8.tflite")' in scanner
    assert '//        interpreter = Interpreter(FileUtil.loadMappedFile(context, "facenet.tflite")' in scanner
    assert '// interpreter = Interpreter(FileUtil.loadMappedFile(context, "facenet_int_quantized.tflite")' in scanner
    assert 'mobile_face_net.tflite' not in scanner
    # Nothing else in the file changed: the line-by-line diff touches exactly the 3 constants and the 2 lines of
    # the crop call (the app now crops with the generated preprocessor).
    # The crop function's body now calls the generated preprocessor; its call site skips a face it cannot crop.
    assert "        val faceBitmap = cropAndResizeFace(imageProxy, face) ?: return imageProxy.close()\n" in scanner
    assert "    private fun cropAndResizeFace(imageProxy: ImageProxy, face: Face): Bitmap? {\n" in scanner
    assert "        return FtkFaceInput.bitmapFromImageProxy(imageProxy, face)\n" in scanner
    assert any("SharedPreferences 'face_records'" in w and "re-enrol" in w for w in result.warnings)

    after = snapshot(android_app)
    again = deploy(tiny_export, android_app, variant="int8", threshold=0.42)
    assert not again.applied and again.changed_files == [] and again.diff == ""
    assert snapshot(android_app) == after

    undone = revert(android_app)
    assert sorted(undone.removed) == [f"{ASSETS}/ftk_tiny_int8.tflite", f"{SOURCES}/FtkFaceInput.kt",
                                      f"{SOURCES}/FtkFacePreprocessor.kt"]
    assert snapshot(android_app) == before
    with pytest.raises(InputError, match="nothing to revert"):
        revert(android_app)


def test_dry_run_writes_nothing_and_shows_diff(tiny_export, android_app):
    before = snapshot(android_app)
    listing = sorted(p for p in android_app.rglob("*"))
    result = deploy(tiny_export, android_app, variant="float32", threshold=0.5, dry_run=True)
    assert result.dry_run and not result.applied
    assert snapshot(android_app) == before and sorted(android_app.rglob("*")) == listing
    assert "-    private val inputSize = 112 // 160" in result.diff
    assert "+        val threshold = 0.5" in result.diff
    assert "Binary file app/src/main/assets/ftk_tiny_float32.tflite: absent" in result.diff
    assert result.compatibility.compatible


def test_cli_deploy_dry_run_and_revert(tiny_export, android_app):
    dry = ftk("deploy", str(tiny_export), "--app", str(android_app), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "runtime check" in dry.stdout and ": compatible" in dry.stdout and "nothing was written" in dry.stdout
    assert "+    private val inputSize = 32 // 160" in dry.stdout
    assert not (android_app / ASSETS / "ftk_tiny_int8.tflite").exists()
    real = ftk("deploy", str(tiny_export), "--app", str(android_app), "--threshold", "0.4")
    assert real.returncode == 0, real.stderr
    assert (android_app / ASSETS / "ftk_tiny_int8.tflite").exists()
    back = ftk("deploy", "--revert", "--app", str(android_app))
    assert back.returncode == 0, back.stderr
    assert not (android_app / ASSETS / "ftk_tiny_int8.tflite").exists()
    bad = ftk("deploy", str(tiny_export), "--app", str(android_app), "--threshold", "high")
    assert bad.returncode == 2 and "neither a number nor 'auto'" in bad.stderr


def test_threshold_auto_uses_report_for_this_exact_file(tiny_export, android_app):
    from toolkit.io import sha256_file
    from toolkit.reports import default_eval_dir

    model = tiny_export / "model_int8.tflite"
    with pytest.raises(InputError, match="ftk evaluate"):
        deploy(tiny_export, android_app, threshold="auto")
    report_dir = default_eval_dir(model)
    report_dir.mkdir()
    report = {"model_sha256": sha256_file(model),
              "verification": {"thresholds_at_far": {"0.01": 0.3123, "0.001": 0.4567}}}
    (report_dir / "report.json").write_text(json.dumps(report))
    result = deploy(tiny_export, android_app, threshold="auto", far=1e-3)
    assert result.threshold == pytest.approx(0.4567) and result.threshold_source == "auto"
    assert "val threshold = 0.4567\n" in (android_app / CHECK).read_text()
    with pytest.raises(InputError, match="no threshold at FAR"):
        deploy(tiny_export, android_app, threshold="auto", far=0.05)
    # A report for another file (sha mismatch) is never used.
    report["model_sha256"] = "0" * 64
    (report_dir / "report.json").write_text(json.dumps(report))
    with pytest.raises(InputError, match="ftk evaluate"):
        deploy(tiny_export, android_app, threshold="auto")


def test_unchanged_strict_threshold_warns(tiny_export, android_app):
    result = deploy(tiny_export, android_app, dry_run=True)
    assert result.threshold_source == "unchanged"
    assert any("0.98" in w and "stricter" in w for w in result.warnings)


@pytest.mark.parametrize("variant_dir, style, gradle_file", [
    ("groovy", "groovy", "app/build.gradle"),
    ("catalog", "version-catalog", "gradle/libs.versions.toml"),
])
def test_gradle_variants_detect_and_bump(tiny_export, android_app, variant_dir, style, gradle_file):
    (android_app / "app" / "build.gradle.kts").unlink()
    shutil.copytree(GRADLE_VARIANTS / variant_dir, android_app, dirs_exist_ok=True)
    runtime = find_runtime(android_app)
    assert (runtime.version, runtime.style) == ("2.12.0", style)
    before = (android_app / gradle_file).read_text()
    result = deploy(tiny_export, android_app, bump_runtime="2.16.1", threshold=0.4)
    after = (android_app / gradle_file).read_text()
    assert result.compatibility.target_runtime == "2.16.1"
    assert find_runtime(android_app).version == "2.16.1"
    assert "0.4.3" in after  # tensorflow-lite-support has its own version line: untouched
    assert before.replace("2.12.0", "2.16.1") == after
    revert(android_app)
    assert (android_app / gradle_file).read_text() == before


def test_kotlin_dsl_runtime_and_bump_diff(tiny_export, android_app):
    runtime = find_runtime(android_app)
    assert (runtime.version, runtime.style) == ("2.12.0", "kotlin-dsl")
    result = deploy(tiny_export, android_app, bump_runtime="2.14.0", dry_run=True)
    assert '+    implementation("org.tensorflow:tensorflow-lite:2.14.0")' in result.diff
    assert '+    implementation("org.tensorflow:tensorflow-lite-gpu:2.14.0")' in result.diff
    assert "tensorflow-lite-support:0.4.3" not in "".join(l for l in result.diff.splitlines() if l.startswith("+"))


def test_refuses_hybrid_int8_on_2_12_and_nothing_changes(tiny_tflite_models, tmp_path, android_app):
    export = tmp_path / "hybrid_export"
    export.mkdir()
    model = shutil.copy(tiny_tflite_models["dynamic_int8"], export / "model_int8.tflite")
    write_manifest(export, default_spec("tiny").to_dict(), {"int8": Path(model)})
    before = snapshot(android_app)
    with pytest.raises(CompatibilityError, match="dynamic-range") as excinfo:
        deploy(export, android_app)
    assert "2.12.0" in str(excinfo.value)
    assert snapshot(android_app) == before and not (android_app / ".ftk-deploy").exists()
    verdict = deploy(export, android_app, dry_run=True).compatibility
    assert not verdict.compatible and verdict.hybrid_int8
    out = ftk("deploy", str(export), "--app", str(android_app), "--dry-run")
    assert out.returncode == 2 and "INCOMPATIBLE" in out.stdout and "error: the model would be refused" in out.stderr


def test_refuses_op_newer_than_app_runtime(tiny_export, android_app):
    # Pin the app to a runtime older than FULLY_CONNECTED v5 (2.0.0) in the float32 export.
    gradle = android_app / "app" / "build.gradle.kts"
    gradle.write_text(gradle.read_text().replace("2.12.0", "1.15.0"))
    before = snapshot(android_app)
    with pytest.raises(CompatibilityError, match=r"FULLY_CONNECTED version \d+ needs TFLite runtime >= 2"):
        deploy(tiny_export, android_app, variant="float32")
    assert snapshot(android_app) == before
    result = deploy(tiny_export, android_app, variant="float32", bump_runtime="2.12.0", threshold=0.4)
    assert result.applied and "2.12.0" in gradle.read_text() and "1.15.0" not in gradle.read_text()


def test_refuses_an_app_without_the_models_constants(tiny_export, android_app):
    for rel in (SCANNER, CHECK):
        path = android_app / rel
        path.write_text(path.read_text().replace("private val embeddingDim", "private val outputSize"))
    with pytest.raises(InputError, match="no Kotlin file declares both 'val inputSize = N' and 'val embeddingDim"):
        deploy(tiny_export, android_app, app_code="none")


def test_refuses_unexpected_declaration(tiny_export, android_app):
    path = android_app / CHECK
    path.write_text(path.read_text().replace("private val inputSize = 112   // 160",
                                             "private val inputSize = INPUT_SIZE   // 160"))
    before = snapshot(android_app)
    with pytest.raises(InputError, match=r"CheckRecordsActivity.kt:\d+: inputSize is not an integer literal"):
        deploy(tiny_export, android_app)
    assert snapshot(android_app) == before


def test_refuses_model_manifest_mismatch(tiny_export, android_app):
    manifest_path = tiny_export / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["spec"]["embedding_dim"] = 512
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match=r"512-d embeddings, but the graph outputs \[1, 16\]"):
        deploy(tiny_export, android_app)
    manifest["spec"]["embedding_dim"] = 16
    manifest["spec"]["value_range"] = [-1.0, 1.0]
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match="raw 0..255"):
        deploy(tiny_export, android_app)


def test_refuses_without_manifest_and_clobbering_foreign_asset(tiny_export, android_app, tmp_path):
    lone = tmp_path / "lone" / "model.tflite"
    lone.parent.mkdir()
    shutil.copy(tiny_export / "model_int8.tflite", lone)
    with pytest.raises(ModelFileError, match="manifest"):
        deploy(lone, android_app)
    foreign = android_app / ASSETS / "ftk_tiny_int8.tflite"
    foreign.write_bytes(b"someone else's model")
    with pytest.raises(InputError, match="already exists"):
        deploy(tiny_export, android_app)
    assert foreign.read_bytes() == b"someone else's model"
    # Our own asset from an earlier deploy may be replaced (float32 then int8 under one name).
    foreign.unlink()
    deploy(tiny_export, android_app, variant="float32", asset_name="ftk_face.tflite", threshold=0.4)
    result = deploy(tiny_export, android_app, variant="int8", asset_name="ftk_face.tflite", threshold=0.4)
    assert result.applied and not any("no longer loaded" in w for w in result.warnings)
    switched = deploy(tiny_export, android_app, variant="float32", threshold=0.4)  # default name: another file
    assert any(f"{ASSETS}/ftk_face.tflite (written by an earlier ftk deploy) is no longer loaded" in w
               for w in switched.warnings)
    assert (android_app / ASSETS / "ftk_face.tflite").read_bytes() == (tiny_export / "model_int8.tflite").read_bytes()


def test_read_only_file_refused_before_anything_changes(tiny_export, android_app):
    target = android_app / SCANNER
    target.chmod(0o444)
    before = snapshot(android_app)
    try:
        with pytest.raises(InputError, match="read-only"):
            deploy(tiny_export, android_app, threshold=0.4)
    finally:
        target.chmod(0o644)
    assert snapshot(android_app) == before and not (android_app / ".ftk-deploy").exists()


def test_failure_mid_way_rolls_back_everything(tiny_export, android_app):
    """An immutable file (chattr +i) passes the permission pre-check but its rename fails after the asset and
    CheckRecordsActivity.kt were already replaced: both must be restored."""
    target = android_app / SCANNER
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(target)], capture_output=True).returncode:
        pytest.skip("chattr +i is not available here (needs root and a filesystem with the immutable flag)")
    before = snapshot(android_app)
    try:
        with pytest.raises(InputError, match="every file was restored"):
            deploy(tiny_export, android_app, threshold=0.4)
    finally:
        subprocess.run(["chattr", "-i", str(target)], check=True)
    assert snapshot(android_app) == before
    assert not (android_app / ".ftk-deploy").exists()
    assert not list(android_app.rglob("*.ftk-tmp"))


def test_git_dirty_warning_and_revert_refuses_after_user_edit(tiny_export, android_app):
    git = shutil.which("git")
    if git is None:
        pytest.skip("git not installed")
    run = lambda *args: subprocess.run([git, "-C", str(android_app), *args], check=True, capture_output=True)
    run("init", "-q")
    run("-c", "user.email=t@t", "-c", "user.name=t", "add", "-A")
    run("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "fixture")
    (android_app / CHECK).write_text((android_app / CHECK).read_text() + "\n// local edit\n")
    result = deploy(tiny_export, android_app, threshold=0.4)
    assert any("uncommitted git changes" in w and "CheckRecordsActivity.kt" in w for w in result.warnings)
    (android_app / SCANNER).write_text((android_app / SCANNER).read_text() + "\n// edited after deploy\n")
    with pytest.raises(InputError, match="changed since ftk deploy"):
        revert(android_app)
    assert revert(android_app, force=True).restored


def test_find_app_reads_current_settings(android_app):
    app = find_app(android_app)
    assert sorted(p.name for p in app.activities) == ["CheckRecordsActivity.kt", "ScannerActivity.kt"]
    assert {int(lit.value) for lit in app.sizes} == {112} and {int(lit.value) for lit in app.dims} == {192}
    assert app.current_models == ["mobile_face_net.tflite"]
    assert app.threshold.value == "0.98"


# --- the app's face preprocessing -------------------------------------------------------------------------------
def aligned_export(tiny_export: Path) -> Path:
    """The tiny export with a spec that crops by 5-point alignment (like MobileFaceNet): needs ML Kit landmarks."""
    manifest_path = tiny_export / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["spec"]["crop"] = "align"
    manifest_path.write_text(json.dumps(manifest))
    return tiny_export


def test_aligned_model_turns_landmarks_on_and_routes_both_activities(tiny_export, android_app):
    before = snapshot(android_app)
    result = deploy(aligned_export(tiny_export), android_app, threshold=0.4)
    assert result.preprocessing["patched"] and result.preprocessing["landmarks_before"] == "off"
    for activity in (SCANNER, CHECK):
        text = (android_app / activity).read_text()
        assert ".setLandmarkMode(FaceDetectorOptions.LANDMARK_MODE_ALL)" in text
        assert "setContourMode(FaceDetectorOptions.LANDMARK_MODE_NONE)" not in text
        assert "val faceBitmap = cropAndResizeFace(imageProxy, face) ?: return imageProxy.close()" in text
        assert "return FtkFaceInput.bitmapFromImageProxy(imageProxy, face)" in text
    check = (android_app / CHECK).read_text()
    assert "var bestSimilarity = Float.NEGATIVE_INFINITY" in check
    assert "val stored = FtkRecords.embeddingOf(key) ?: continue" in check
    assert "return if (bestSimilarity >= threshold) bestKey else null" in check
    assert "putString(FtkRecords.key(embedding), answers.toString())" in (android_app / USER_INPUT).read_text()
    core = (android_app / SOURCES / "FtkFacePreprocessor.kt").read_text()
    assert 'const val CROP = "align"' in core and f'MODEL_ID = "{result.model_info["sha256"][:12]}"' in core
    # A second deploy recognises its own edits: nothing to do. Revert restores every byte.
    again = deploy(tiny_export, android_app, threshold=0.4)
    assert not again.applied and again.changed_files == []
    revert(android_app)
    assert snapshot(android_app) == before


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("cropAndResizeFace(", "cutFace(").replace("): Bitmap {", "): android.graphics.Bitmap {"),
     "builds the interpreter input but no crop function ftk recognises is in that file"),
    (lambda t: t.replace("    private fun processFace(imageProxy: ImageProxy, face: Face) {",
                         "    private fun processFace(imageProxy: ImageProxy, face: Face): FloatArray {"),
     "which returns a value"),
    (lambda t: t.replace("val faceBitmap = cropAndResizeFace(imageProxy, face)",
                         "val faceBitmap = listOf(1).map { cropAndResizeFace(imageProxy, face) }.first()"),
     "is used inside an expression"),
    (lambda t: t.replace("private fun cosineSimilarity(", "private fun cosineSimilarity(("),
     "this Kotlin does not parse"),
    (lambda t: t.replace("val stored = key.removeSurrounding", "val stored = it.removeSurrounding"),
     "found 1 and 0"),
])
def test_unrecognised_app_code_is_refused_with_a_report_and_nothing_changes(tiny_export, android_app, edit,
                                                                             message):
    path = android_app / CHECK
    path.write_text(edit(path.read_text()))
    before = snapshot(android_app)
    out = ftk("deploy", str(aligned_export(tiny_export)), "--app", str(android_app), "--threshold", "0.4")
    assert out.returncode == 2, out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0] and "nothing was changed" in errors[0], out.stderr
    if "does not parse" not in message:
        assert "--app-code kit" in errors[0] and "found: " in out.stderr
    assert snapshot(android_app) == before and not (android_app / ".ftk-deploy").exists()


def test_keep_app_preprocessing_deploys_model_and_constants_and_states_the_cost(tiny_export, android_app):
    from toolkit.app_sim import app_eval_dir
    from toolkit.io import sha256_file
    from toolkit.reports import default_eval_dir

    model = tiny_export / "model_int8.tflite"
    for folder, accuracy in ((default_eval_dir(model), 0.99), (app_eval_dir(model, "before", model.parent), 0.786)):
        folder.mkdir()
        (folder / "report.json").write_text(json.dumps({
            "model_sha256": sha256_file(model),
            "verification": {"pairs_file": "/x/pairsDevTest.txt", "accuracy_mean": accuracy}}))
    path = android_app / CHECK
    path.write_text(path.read_text().replace("cropAndResizeFace(", "cutFace("))  # unrecognised: refused by default
    out = ftk("deploy", str(tiny_export), "--app", str(android_app), "--threshold", "0.4", "--keep-app-preprocessing")
    assert out.returncode == 0, out.stderr
    assert "accuracy 99.00% with the model's crop vs 78.60% with the app's (simulated), 20.4 points lost" in out.stderr
    assert "app code: --app-code none" in out.stdout
    assert not (android_app / SOURCES / "FtkFacePreprocessor.kt").exists()
    assert "cutFace(" in path.read_text() and "FtkFaceInput" not in path.read_text()
    assert 'loadMappedFile(this, "ftk_tiny_int8.tflite")' in path.read_text()


def test_read_only_activity_is_refused_in_one_line(tiny_export, android_app):
    target = android_app / CHECK
    target.chmod(0o444)
    before = snapshot(android_app)
    try:
        out = ftk("deploy", str(tiny_export), "--app", str(android_app), "--threshold", "0.4")
    finally:
        target.chmod(0o644)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "CheckRecordsActivity.kt is read-only" in out.stderr and "nothing was changed" in out.stderr
    assert snapshot(android_app) == before


def test_deploy_again_and_revert_leave_diff_r_clean(tiny_export, android_app, tmp_path):
    """What a user checks by hand: the dry run writes nothing; deploy, deploy again, revert: `diff -r` is silent."""
    pristine = Path(shutil.copytree(android_app, tmp_path / "pristine"))
    diff = lambda: subprocess.run(["diff", "-r", str(pristine), str(android_app)], capture_output=True, text=True)
    assert ftk("deploy", str(tiny_export), "--app", str(android_app), "--dry-run").returncode == 0
    assert diff().returncode == 0, diff().stdout
    first = ftk("deploy", str(tiny_export), "--app", str(android_app), "--threshold", "0.4")
    assert first.returncode == 0, first.stderr
    assert "adds:  app/src/main/java/com/example/facerecognition/FtkFacePreprocessor.kt" in first.stdout
    second = ftk("deploy", str(tiny_export), "--app", str(android_app), "--threshold", "0.4")
    assert second.returncode == 0 and "nothing to do" in second.stdout
    back = ftk("deploy", "--revert", "--app", str(android_app))
    assert back.returncode == 0, back.stderr
    shutil.rmtree(android_app / ".ftk-deploy")  # the backup set is ftk's own record, outside the app's files
    result = diff()
    assert result.returncode == 0, result.stdout


def test_refuses_a_model_changed_after_export(tiny_export, android_app):
    """The manifest belongs to the file it lists: a file whose sha256 differs from its entry is never deployed."""
    model = tiny_export / "model_int8.tflite"
    data = bytearray(model.read_bytes())
    data[-100] ^= 0xFF
    model.write_bytes(bytes(data))
    before = snapshot(android_app)
    out = ftk("deploy", str(tiny_export), "--app", str(android_app), "--threshold", "0.4")
    assert out.returncode == 2 and "sha256" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert snapshot(android_app) == before


@pytest.mark.parametrize("report_edit, message", [
    (lambda r: r["verification"]["thresholds_at_far"].update({"0.001": float("nan")}), "not a cosine similarity"),
    (lambda r: r["verification"]["thresholds_at_far"].update({"0.001": 7.5}), "is 7.5, not a cosine similarity"),
    (lambda r: r.update(crops="app before deploy"), "measured with the crops of the app before deploy"),
    (lambda r: r.update(spec={**r["spec"], "box_margin": 32}), "box_margin: report 32, model 0"),
])
def test_threshold_auto_refuses_a_report_it_cannot_trust(tiny_export, android_app, report_edit, message):
    """--threshold auto writes only a cosine calibrated with the model's own crops into the app."""
    from toolkit.io import sha256_file
    from toolkit.reports import default_eval_dir

    model = tiny_export / "model_int8.tflite"
    report = {"model_sha256": sha256_file(model), "spec": default_spec("tiny").to_dict(), "crops": "model spec",
              "verification": {"thresholds_at_far": {"0.001": 0.45}}}
    report_edit(report)
    default_eval_dir(model).mkdir()
    (default_eval_dir(model) / "report.json").write_text(json.dumps(report))
    before = snapshot(android_app)
    out = ftk("deploy", str(tiny_export), "--app", str(android_app), "--threshold", "auto")
    assert out.returncode == 2 and message in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert snapshot(android_app) == before


def test_revert_dry_run_writes_nothing_and_force_needs_revert(tiny_export, android_app):
    assert ftk("deploy", str(tiny_export), "--app", str(android_app), "--threshold", "0.4").returncode == 0
    after = snapshot(android_app)
    journals = sorted(p.read_bytes() for p in (android_app / ".ftk-deploy").rglob("journal.json"))
    dry = ftk("deploy", "--revert", "--dry-run", "--app", str(android_app))
    assert dry.returncode == 0, dry.stderr
    assert "would remove app/src/main/assets/ftk_tiny_int8.tflite" in dry.stdout and "nothing was written" in dry.stdout
    assert snapshot(android_app) == after
    assert sorted(p.read_bytes() for p in (android_app / ".ftk-deploy").rglob("journal.json")) == journals
    assert ftk("deploy", "--revert", "--app", str(android_app)).returncode == 0  # the real revert still works


@pytest.mark.parametrize("name", ['face".tflite', "face$x.tflite", "../face.tflite", ".hidden.tflite", "face.bin",
                                  "fa ce.tflite", "face\\n.tflite"])
def test_unsafe_asset_names_are_refused(tiny_export, android_app, name):
    before = snapshot(android_app)
    out = ftk("deploy", str(tiny_export), "--app", str(android_app), "--asset-name", name, "--threshold", "0.4")
    assert out.returncode == 2 and "not a safe file name" in out.stderr, out.stderr
    assert snapshot(android_app) == before


def test_bump_runtime_to_an_unreleased_version_is_refused(tiny_export, android_app):
    out = ftk("deploy", str(tiny_export), "--app", str(android_app), "--bump-runtime", "2.99.0", "--dry-run")
    assert out.returncode == 2 and "newer than the newest org.tensorflow:tensorflow-lite release" in out.stderr



def test_app_code_edits_ignore_comments_keep_contours_line_endings_and_packages(tiny_export, android_app):
    """A comment that mentions the patterns is not patched; a real contour setting stays; a chain without a
    landmark setting gets one; CRLF files keep CRLF; a records file in another package imports FtkRecords."""
    check, scanner = android_app / CHECK, android_app / SCANNER
    text = check.read_text().replace(
        "    private fun processFace(", "    // feeds convertBitmapToByteBuffer(faceBitmap) to the model\n"
        "    // TODO migrate to FtkFaceInput.fromImageProxy(imageProxy, face)\n    private fun processFace(")
    text = text.replace(".setContourMode(FaceDetectorOptions.LANDMARK_MODE_NONE)",
                        ".setContourMode(FaceDetectorOptions.CONTOUR_MODE_ALL)")
    check.write_bytes(text.replace("\n", "\r\n").encode())
    user = android_app / USER_INPUT
    moved = android_app / SOURCES / "ui" / "UserInputActivity.kt"
    moved.parent.mkdir()
    moved.write_text(user.read_text().replace("package com.example.facerecognition",
                                              "package com.example.facerecognition.ui"))
    user.unlink()
    deploy(aligned_export(tiny_export), android_app, threshold=0.4)
    raw = check.read_bytes()
    assert raw.count(b"\r\n") == raw.count(b"\n")  # every line still ends in CRLF
    patched = raw.decode().replace("\r\n", "\n")
    assert "// feeds convertBitmapToByteBuffer(faceBitmap) to the model" in patched
    assert "        val faceBitmap = cropAndResizeFace(imageProxy, face) ?: return imageProxy.close()" in patched
    assert ".setContourMode(FaceDetectorOptions.CONTOUR_MODE_ALL)" in patched
    assert "            .setLandmarkMode(FaceDetectorOptions.LANDMARK_MODE_ALL)\n" in patched
    assert "cropAndResizeFace(imageProxy, face) ?: return imageProxy.close()" in scanner.read_text()
    stored = moved.read_text()
    assert "import com.example.facerecognition.FtkRecords\n" in stored and "FtkRecords.key(embedding)" in stored


def test_generated_files_never_replace_a_users_file(tiny_export, android_app):
    own = android_app / SOURCES / "FtkFaceInput.kt"
    own.write_text("package com.example.facerecognition\n// my own helper\n")
    before = snapshot(android_app)
    out = ftk("deploy", str(tiny_export), "--app", str(android_app), "--threshold", "0.4")
    assert out.returncode == 2 and "FtkFaceInput.kt exists and was not generated by ftk" in out.stderr
    assert snapshot(android_app) == before


def test_keep_app_preprocessing_refuses_over_an_earlier_ftk_preprocessor(tiny_export, android_app):
    assert ftk("deploy", str(tiny_export), "--app", str(android_app), "--variant", "float32",
               "--threshold", "0.4").returncode == 0
    before = snapshot(android_app)
    out = ftk("deploy", str(tiny_export), "--app", str(android_app), "--threshold", "0.4", "--keep-app-preprocessing")
    assert out.returncode == 2 and "already crops with ftk's preprocessor" in out.stderr
    assert snapshot(android_app) == before


@pytest.mark.parametrize("key, value", [("box_margin", "0\n    init { java.io.File(\"/tmp/x\").writeText(\"x\") }"),
                                        ("backbone", "tiny\nfun injected() {}"), ("box_margin", 40)])
def test_an_edited_spec_never_reaches_generated_code(tiny_export, android_app, key, value):
    """The spec in a manifest is not covered by the artifact hashes: its values are checked, not pasted."""
    manifest_path = tiny_export / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["spec"][key] = value
    manifest_path.write_text(json.dumps(manifest))
    before = snapshot(android_app)
    out = ftk("deploy", str(tiny_export), "--app", str(android_app), "--threshold", "0.4")
    assert out.returncode == 2 and key in out.stderr, out.stderr
    assert snapshot(android_app) == before


def test_read_only_source_folder_is_refused_even_as_root(tiny_export, android_app):
    """The generated files go beside the activities: a write-protected folder there is a refusal, not a write."""
    folder = android_app / SOURCES
    before = snapshot(android_app)
    folder.chmod(0o555)
    try:
        out = ftk("deploy", str(tiny_export), "--app", str(android_app), "--threshold", "0.4")
    finally:
        folder.chmod(0o755)
    assert out.returncode == 2 and "facerecognition is not writable" in out.stderr, out.stderr
    assert snapshot(android_app) == before


def test_threshold_is_written_so_the_app_decides_as_ftk(tiny_export, android_app):
    """The literal reads back as ftk's exact double (no 4-digit rounding) and the comparison accepts at >=."""
    from toolkit.deploy.android import format_threshold
    import struct

    deploy(tiny_export, android_app, threshold=0.271109043812)
    check = (android_app / CHECK).read_text()
    assert "        val threshold = 0.271109043812\n" in check
    assert "return if (bestSimilarity >= threshold) bestKey else null" in check
    # A Float literal: the smallest float32 not below the threshold, so `score >= t` holds for the same scores.
    literal = format_threshold(0.271109043812, float32=True)
    single = struct.unpack("<f", struct.pack("<f", float(literal[:-1])))[0]
    below = struct.unpack("<f", struct.pack("<i", struct.unpack("<i", struct.pack("<f", single))[0] - 1))[0]
    assert literal.endswith("f") and below < 0.271109043812 <= single


def test_degenerate_or_unresolvable_thresholds_are_refused_unless_forced(tiny_export, android_app):
    from toolkit.io import sha256_file
    from toolkit.reports import default_eval_dir

    before = snapshot(android_app)
    out = ftk("deploy", str(tiny_export), "--app", str(android_app), "--threshold", "0.99997")
    assert out.returncode == 2 and "is degenerate (>= 0.9999)" in out.stderr and "--force" in out.stderr
    model = tiny_export / "model_int8.tflite"
    default_eval_dir(model).mkdir()
    (default_eval_dir(model) / "report.json").write_text(json.dumps({
        "model_sha256": sha256_file(model), "spec": default_spec("tiny").to_dict(), "crops": "model spec",
        "verification": {"thresholds_at_far": {"0.001": 0.61}, "far_resolvable": {"0.001": False}}}))
    out = ftk("deploy", str(tiny_export), "--app", str(android_app), "--threshold", "auto")
    assert out.returncode == 2 and "cannot resolve FAR 0.001" in out.stderr, out.stderr
    assert snapshot(android_app) == before
    forced = ftk("deploy", str(tiny_export), "--app", str(android_app), "--threshold", "auto", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "deployed despite (--force)" in forced.stderr and "val threshold = 0.61" in (android_app / CHECK).read_text()


def test_a_symlinked_kotlin_file_is_named_never_followed_or_replaced(tiny_export, android_app):
    """A second .kt that is a symlink to an activity: read once (through the real file), the link left as it is."""
    link = android_app / SOURCES / "CheckRecordsCopy.kt"
    link.symlink_to("CheckRecordsActivity.kt")
    result = deploy(tiny_export, android_app, threshold=0.4)
    assert result.applied and link.is_symlink() and link.readlink() == Path("CheckRecordsActivity.kt")
    assert any("CheckRecordsCopy.kt is not a regular file" in w for w in result.warnings)
    assert not list((android_app / SOURCES).glob("*.ftk-tmp"))
    revert(android_app)
    assert link.is_symlink()
