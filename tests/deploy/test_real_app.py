"""ftk deploy into the real face-data-matching-app (a copy of ../shared/apps/face-data-matching-app): the patch read
and written through the Kotlin parse tree, dry run, no-op rerun, byte-exact revert, and the three --app-code modes."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.conftest import shaped_spec

SOURCES = "app/src/main/java/com/example/facerecognitioninputsapp"
CHECK, SCANNER, ENROL = (f"{SOURCES}/{n}.kt" for n in ("CheckRecordsActivity", "ScannerActivity",
                                                          "UserInputActivity"))


def ftk(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from toolkit.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
            and ".ftk-deploy" not in p.relative_to(root).parts}


def same_tree(a: Path, b: dict[str, bytes]) -> bool:
    return snapshot(a) == b


@pytest.fixture
def state_dir(tmp_path, monkeypatch) -> Path:
    state = tmp_path / "ftk-state"
    monkeypatch.setenv("FTK_STATE_DIR", str(state))
    return state


def test_dry_run_shows_every_edit_and_writes_nothing(shaped_exports, real_app, state_dir):
    before = snapshot(real_app)
    out = ftk("deploy", str(shaped_exports["mobilefacenet"]), "--app", str(real_app), "--variant", "float32",
              "--threshold", "0.4213", "--dry-run")
    assert out.returncode == 0, out.stderr
    diff = out.stdout
    for expected in ("+                .setLandmarkMode(FaceDetectorOptions.LANDMARK_MODE_ALL) // skips landmark mapping",
                     "+                ) ?: return@addOnSuccessListener imageProxy.close()",
                     "+    private fun cropAndResizeFace(imageProxy: ImageProxy, face: Face): Bitmap? {",
                     "+        return FtkFaceInput.bitmapFromImageProxy(imageProxy, face)",
                     "+                val faceRecognitionKey = FtkRecords.key(faceRecognitionResult)",
                     "+                val floatArrayKey = FtkRecords.embeddingOf(key) ?: continue",
                     "+        var maxSimilarityScore = Float.NEGATIVE_INFINITY",
                     "+        val threshold = 0.4213",
                     "+        return if (maxSimilarityScore >= threshold) matchingKey else null",
                     "+    private val embeddingDim = 128 // 512 //  // 128 //  // this is the output size",
                     "+    private val embeddingDim = 128// 512 //  // 128 // this is the output size",
                     'FileUtil.loadMappedFile(context, "ftk_tiny_float32.tflite"), interpreterOptions)',
                     f"+++ b/{SOURCES}/FtkFaceInput.kt", f"+++ b/{SOURCES}/FtkFacePreprocessor.kt"):
        assert expected in diff, expected
    # commented-out alternatives are comments in the parse tree: never edited
    assert '//            interpreter = Interpreter(FileUtil.loadMappedFile(context, "facenet.tflite")' not in \
        "\n".join(line for line in diff.splitlines() if line.startswith(("+", "-")))
    assert "dry run: 6 file(s) would change; nothing was written" in out.stdout
    assert same_tree(real_app, before)


def test_deploy_then_noop_then_revert_restores_every_byte(shaped_exports, real_app, state_dir):
    from toolkit.deploy import deploy, revert

    before = snapshot(real_app)
    assert not (real_app / "app/src/main/assets").exists()  # the real app ships without its models
    result = deploy(shaped_exports["mobilefacenet"], real_app, variant="float32", threshold=0.5)
    assert result.applied and result.preprocessing["mode"] == "patch"
    assert (real_app / "app/src/main/assets/ftk_tiny_float32.tflite").is_file()
    assert sorted(result.preprocessing["added_files"]) == [f"{SOURCES}/FtkFaceInput.kt",
                                                           f"{SOURCES}/FtkFacePreprocessor.kt"]
    check = (real_app / CHECK).read_text()
    assert check.count("FtkFaceInput.bitmapFromImageProxy") == 1 and "Bitmap.createScaledBitmap" not in check
    again = deploy(shaped_exports["mobilefacenet"], real_app, variant="float32", threshold=0.5)
    assert not again.applied and again.changed_files == []
    undone = revert(real_app)
    assert f"app/src/main/assets" in " ".join(undone.removed)
    assert same_tree(real_app, before)
    assert not (real_app / "app/src/main/assets").exists()


def test_box_model_keeps_the_detector_and_sets_its_sizes(shaped_exports, real_app, state_dir):
    from toolkit.deploy import deploy

    result = deploy(shaped_exports["inception_resnet_v1"], real_app, variant="float32", dry_run=True)
    assert "LANDMARK_MODE_ALL" not in result.diff  # a box crop needs no landmarks
    assert "+    private val inputSize = 160 // 160" in result.diff
    assert "+    private val embeddingDim = 512 // 512 //  // 128 //  // this is the output size" in result.diff
    assert "(face box + 20 px, 160x160)" in result.diff


def test_kit_changes_no_existing_file_and_prints_the_steps(shaped_exports, real_app, state_dir):
    before = snapshot(real_app)
    out = ftk("deploy", str(shaped_exports["mobilefacenet"]), "--app", str(real_app), "--variant", "float32",
              "--app-code", "kit", "--threshold", "0.5")
    assert out.returncode == 0, out.stderr
    after = snapshot(real_app)
    assert {k: v for k, v in after.items() if k in before} == before
    assert sorted(set(after) - set(before)) == ["app/src/main/assets/ftk_tiny_float32.tflite",
                                                f"{SOURCES}/FtkFaceInput.kt", f"{SOURCES}/FtkFacePreprocessor.kt",
                                                f"{SOURCES}/FtkModelConfig.kt"]
    config = (real_app / SOURCES / "FtkModelConfig.kt").read_text()
    assert "const val THRESHOLD = 0.5" in config and "const val INPUT_SIZE = 112" in config
    assert "setLandmarkMode(FaceDetectorOptions.LANDMARK_MODE_ALL)" in out.stdout  # step 1 of the wiring
    assert ftk("deploy", "--revert", "--app", str(real_app)).returncode == 0
    assert same_tree(real_app, before)


def test_none_sets_only_model_and_constants(shaped_exports, real_app, state_dir):
    from toolkit.deploy import deploy

    result = deploy(shaped_exports["mobilefacenet"], real_app, variant="float32", app_code="none", dry_run=True)
    assert sorted(result.changed_files) == ["app/src/main/assets/ftk_tiny_float32.tflite", CHECK, SCANNER]
    assert "cropAndResizeFace" not in "".join(l for l in result.diff.splitlines() if l.startswith("+"))
    assert any("the app keeps its own face crop" in w for w in result.warnings)


# --- bad input: exit 2, file:line, nothing changed ---------------------------------------------------------------
def _edit(app: Path, rel: str, old: str, new: str) -> None:
    path = app / rel
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize("rel, old, new, message", [
    (CHECK, "private fun bindCameraPreview() {", "private fun bindCameraPreview( {",
     f"{CHECK}:120: this Kotlin does not parse"),
    (SCANNER, "val inputImage =\n", "val inputImage = convertBitmapToByteBuffer(cropAndResizeFace(imageProxy, "
     "faces[0]))\n        val inputImage0 =\n", "cropAndResizeFace(...) is used inside an expression"),
    (CHECK, ".add(CastOp(DataType.FLOAT32))", ".add(CastOp(DataType.FLOAT32)).add(NormalizeOp(127.5f, 127.5f))",
     "normalises pixels (NormalizeOp(127.5f, 127.5f)) but the model normalises inside its graph"),
    (CHECK, "private val inputSize = 112 // 160", "private val inputSize = INPUT // 160",
     "inputSize is not an integer literal"),
])
def test_unpatchable_code_is_refused_with_a_report(shaped_exports, real_app, state_dir, rel, old, new, message):
    _edit(real_app, rel, old, new)
    before = snapshot(real_app)
    out = ftk("deploy", str(shaped_exports["mobilefacenet"]), "--app", str(real_app), "--variant", "float32")
    assert out.returncode == 2, out.stderr
    assert message in out.stderr
    error = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1
    assert same_tree(real_app, before)


def test_refusal_report_names_every_place_with_file_line(shaped_exports, real_app, state_dir):
    # Detector options built in a helper object instead of the activity.
    _edit(real_app, CHECK, "        val detector = FaceDetection.getClient(\n            FaceDetectorOptions.Builder()",
          "        val detector = FaceDetection.getClient(\n            DetectorFactory.options()")
    helper = real_app / SOURCES / "DetectorFactory.kt"
    helper.write_text("package com.example.facerecognitioninputsapp\n\nimport com.google.mlkit.vision.face.Face"
                      "DetectorOptions\n\nobject DetectorFactory {\n    fun options() = FaceDetectorOptions.Builder()"
                      "\n        .setPerformanceMode(FaceDetectorOptions.PERFORMANCE_MODE_FAST)\n}\n")
    out = ftk("deploy", str(shaped_exports["mobilefacenet"]), "--app", str(real_app), "--variant", "float32")
    assert out.returncode == 2
    report = out.stderr
    assert f"found: {SOURCES}/DetectorFactory.kt:6: face detector options: no landmark mode" in report
    assert f"cannot patch: {SOURCES}/DetectorFactory.kt:6: detector options are built outside" in report
    assert f"found: {CHECK}:290: cropAndResizeFace(imageProxy: ImageProxy, face: Face): Bitmap" in report
    assert f"found: {CHECK}:329: convertBitmapToByteBuffer builds the interpreter input: feeds raw" in report
    assert f"found: {CHECK}:403: threshold = 0.98" in report
    assert f"found: {SCANNER}:94: model file = mobile_face_net.tflite" in report
    assert "--app-code kit" in report


def test_non_utf8_and_bom_and_mixed_line_endings(shaped_exports, real_app, state_dir):
    from toolkit.deploy import deploy
    from toolkit.errors import InputError

    path = real_app / ENROL
    original = path.read_bytes()
    path.write_bytes(original.replace(b"// create a data class", b"// caf\xe9: create a data class", 1))
    with pytest.raises(InputError, match=rf"{ENROL}:13: not UTF-8 \(byte 0xe9\)"):
        deploy(shaped_exports["mobilefacenet"], real_app, variant="float32", dry_run=True)
    # A BOM and two CRLF lines among LF lines: every untouched byte stays as it was.
    lines = original.split(b"\n")
    lines[1] += b"\r"
    lines[5] += b"\r"
    path.write_bytes(b"\xef\xbb\xbf" + b"\n".join(lines))
    deploy(shaped_exports["mobilefacenet"], real_app, variant="float32")
    patched = path.read_bytes()
    assert patched.startswith(b"\xef\xbb\xbf") and patched.count(b"\r\n") == 2
    assert patched.replace(b"FtkRecords.key(faceRecognitionResult)", b"faceRecognitionResult.contentToString()") \
        == b"\xef\xbb\xbf" + b"\n".join(lines)


def test_reading_a_megabyte_line_is_linear(shaped_exports, real_app, state_dir):
    import time

    from toolkit.deploy.android import find_app

    (real_app / SOURCES / "Big.kt").write_text("package com.example.facerecognitioninputsapp\n\nval big = 1" +
                                                " " * 1_000_000 + "\n// " + "x" * 1_000_000 + "\n")
    start = time.perf_counter()
    find_app(real_app)
    seconds = time.perf_counter() - start
    print(f"read the app with a 1 MB line and a 1 MB comment in {seconds:.2f} s")
    assert seconds < 60  # a sanity bound, not a speed target: the old regular expressions took minutes here



# --- an app of another shape (tests/fixtures/other_shape_app): crops in an analyzer coroutine, per face, from a
# Bitmap rotated first; detector options in a helper object; normalises pixels itself; records in Room -------------
OTHER_APP = Path(__file__).resolve().parents[1] / "fixtures" / "other_shape_app"
DETECT = "app/src/main/java/com/example/faceroom/detect"


@pytest.fixture
def other_app(tmp_path) -> Path:
    import shutil

    return Path(shutil.copytree(OTHER_APP, tmp_path / "other_shape_app"))


def test_patch_reports_every_place_of_an_app_it_cannot_patch(shaped_exports, other_app, state_dir):
    before = snapshot(other_app)
    out = ftk("deploy", str(shaped_exports["mobilefacenet"]), "--app", str(other_app), "--variant", "float32")
    assert out.returncode == 2
    for line in (f"found: {DETECT}/DetectorConfig.kt:6: face detector options: no landmark mode",
                 f"found: {DETECT}/FaceAnalyzer.kt:26: reads the face's boundingBox in analyze",
                 f"found: {DETECT}/FaceEmbedder.kt:22: toInput builds the interpreter input: normalises pixels itself",
                 f"found: {DETECT}/FaceEmbedder.kt:11: inputSize = 160",
                 f"found: {DETECT}/FaceEmbedder.kt:13: model file = facenet.tflite",
                 "found: app/src/main/java/com/example/faceroom/data/FaceRecord.kt:23: threshold = 0.8f",
                 f"cannot patch: {DETECT}/DetectorConfig.kt:6: detector options are built outside the files that crop",
                 "what to do: ftk deploy ... --app-code kit"):
        assert line in out.stderr, line
    assert sum(line.startswith("error:") for line in out.stderr.splitlines()) == 1
    assert same_tree(other_app, before)


def test_kit_adds_files_to_an_app_of_another_shape_and_revert_removes_them(shaped_exports, other_app, state_dir):
    before = snapshot(other_app)
    out = ftk("deploy", str(shaped_exports["inception_resnet_v1"]), "--app", str(other_app), "--variant",
              "float32", "--app-code", "kit")
    assert out.returncode == 0, out.stderr
    added = sorted(set(snapshot(other_app)) - set(before))
    assert added == ["app/src/main/assets/ftk_tiny_float32.tflite", f"{DETECT}/FtkFaceInput.kt",
                     f"{DETECT}/FtkFacePreprocessor.kt", f"{DETECT}/FtkModelConfig.kt"]
    config = (other_app / DETECT / "FtkModelConfig.kt").read_text()
    assert "package com.example.faceroom.detect" in config and "const val THRESHOLD = Double.NaN" in config
    assert "setLandmarkMode" not in out.stdout  # a box model needs no landmarks: no such step
    assert ftk("deploy", "--revert", "--app", str(other_app)).returncode == 0
    assert same_tree(other_app, before)
