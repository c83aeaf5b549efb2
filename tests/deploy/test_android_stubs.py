"""The Android apps' own Kotlin, compiled with kotlinc against the signature stubs in android_stubs/ and run on the JVM.

(a) the real face-data-matching-app (unpatched) compiles, and its own crop + tensor code runs on the stubs;
(b) the fixture app compiles; (c) the stubs that claim to be faithful (Bitmap, TensorImage + ImageProcessor,
SharedPreferences, Log) behave as documented, checked against numpy; (d) the Kotlin files ftk deploy generates
compile inside the real app and, through the stubs' ImageProxy/Face/Bitmap, give crop_face's input.
One kotlinc run per app (module-scoped fixtures): each takes 30-90 s on a small machine.
"""

from __future__ import annotations

import filecmp
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.deploy.android_jvm import (STUBS_DIR, AppBuild, app_module, app_namespace, compile_app, jvm_tools,
                                      run_main, stub_sources)
from tests.deploy.conftest import FIXTURE_APP
from toolkit.data.crop import crop_face
from toolkit.deploy.kotlin import generate_sources
from toolkit.models.registry import default_spec

ROTATIONS = (0, 90, 180, 270)
HARNESS_PACKAGE = "ftk.stubcheck"

# ------------------------------------------------------------------------------------------------------------------
# Kotlin mains compiled with the apps (kotlinc 1.3 syntax)
# ------------------------------------------------------------------------------------------------------------------
_FRAME_IO = """
fun readFrame(input: DataInputStream): Bitmap {
    val width = input.readInt()
    val height = input.readInt()
    val argb = IntArray(width * height) { input.readInt() }
    return Bitmap.createBitmap(argb, width, height, Bitmap.Config.ARGB_8888)
}

fun describe(buffer: ByteBuffer): String =
    "direct=${buffer.isDirect} native=${buffer.order() == ByteOrder.nativeOrder()} " +
        "position=${buffer.position()} limit=${buffer.limit()}"

fun floatsOf(buffer: ByteBuffer): String {
    val view = buffer.duplicate().order(buffer.order())
    view.rewind()
    val floats = view.asFloatBuffer()
    val values = FloatArray(floats.remaining())
    floats.get(values)
    return values.joinToString(" ")
}

fun failure(e: Throwable): String {
    val cause = if (e is InvocationTargetException) e.targetException else e
    return "error ${cause.javaClass.name}: ${cause.message}"
}
"""

REAL_APP_HARNESS = """
package ftk.stubcheck

import android.graphics.Bitmap
import android.graphics.PointF
import android.graphics.Rect
import androidx.camera.core.ImageProxy
import com.google.mlkit.vision.face.Face
import com.google.mlkit.vision.face.FaceLandmark
import ftk.jvm.TestImageProxy
import java.io.DataInputStream
import java.lang.reflect.InvocationTargetException
import java.nio.ByteBuffer
import java.nio.ByteOrder
import @APP_PACKAGE@.FtkFaceInput
""" + _FRAME_IO + """
// args: "app-crop" ACTIVITY_CLASS | "ftk-input". stdin: frame, rotation, box (4 ints), then for ftk-input the
// subject's left eye, right eye, nose base, left and right mouth corners (10 floats, upright coordinates).
fun main(args: Array<String>) {
    val input = DataInputStream(System.`in`.buffered())
    val frame = readFrame(input)
    val rotation = input.readInt()
    val box = Rect(input.readInt(), input.readInt(), input.readInt(), input.readInt())
    val proxy = TestImageProxy(frame, rotation)
    try {
        if (args[0] == "app-crop") {
            val activity = Class.forName(args[1]).getDeclaredConstructor().newInstance()
            val crop = activity.javaClass.getDeclaredMethod("cropAndResizeFace", ImageProxy::class.java,
                Face::class.java)
            crop.isAccessible = true
            val bitmap = crop.invoke(activity, proxy, Face(box, emptyMap())) as Bitmap
            val toBuffer = activity.javaClass.getDeclaredMethod("convertBitmapToByteBuffer", Bitmap::class.java)
            toBuffer.isAccessible = true
            val buffer = toBuffer.invoke(activity, bitmap) as ByteBuffer
            println("ok ${bitmap.width}x${bitmap.height} ${describe(buffer)}")
            println(floatsOf(buffer))
        } else {
            val types = intArrayOf(FaceLandmark.LEFT_EYE, FaceLandmark.RIGHT_EYE, FaceLandmark.NOSE_BASE,
                FaceLandmark.MOUTH_LEFT, FaceLandmark.MOUTH_RIGHT)
            val landmarks = HashMap<Int, PointF>()
            for (type in types) landmarks[type] = PointF(input.readFloat(), input.readFloat())
            val buffer = FtkFaceInput.fromImageProxy(proxy, Face(box, landmarks))
            if (buffer == null) println("null") else {
                println("ok ${describe(buffer)}")
                println(floatsOf(buffer))
            }
        }
    } catch (e: Exception) {
        println(failure(e))
    }
}
"""

STUB_CHECK_HARNESS = """
package ftk.stubcheck

import android.content.Context
import android.graphics.Bitmap
import android.util.Log
import android.widget.TextView
import ftk.jvm.MemorySharedPreferences
import java.io.DataInputStream
import java.lang.reflect.InvocationTargetException
import java.nio.ByteBuffer
import java.nio.ByteOrder
import org.tensorflow.lite.DataType
import org.tensorflow.lite.support.common.ops.CastOp
import org.tensorflow.lite.support.image.ImageProcessor
import org.tensorflow.lite.support.image.TensorImage
import org.tensorflow.lite.support.image.ops.ResizeOp
""" + _FRAME_IO + """
fun probe(name: String, block: () -> Any?) {
    val result = try { block().toString() } catch (e: Exception) { failure(e) }
    println("$name=$result")
}

// stdin: frame, then the crop x, y, width, height. Prints name=value lines, the crop's floats last.
fun main(args: Array<String>) {
    val input = DataInputStream(System.`in`.buffered())
    val source = readFrame(input)
    val x = input.readInt()
    val y = input.readInt()
    val w = input.readInt()
    val h = input.readInt()
    val crop = Bitmap.createBitmap(source, x, y, w, h)
    probe("source_mutable") { source.isMutable }
    probe("crop_mutable") { crop.isMutable }
    probe("crop_size") { "${crop.width}x${crop.height}" }
    probe("whole_immutable_is_same") { Bitmap.createBitmap(source, 0, 0, source.width, source.height) === source }
    probe("scaled_same_size_of_immutable_is_same") {
        Bitmap.createScaledBitmap(source, source.width, source.height, true) === source
    }
    probe("scaled_same_size_of_mutable_is_copy") {
        val copy = Bitmap.createScaledBitmap(crop, w, h, true)
        "${copy !== crop} ${copy.sameAs(crop)}"
    }
    probe("scaled_other_size") { Bitmap.createScaledBitmap(crop, w + 1, h, true) }
    probe("crop_past_right") { Bitmap.createBitmap(source, x, y, source.width - x + 1, h) }
    probe("crop_negative_x") { Bitmap.createBitmap(source, -1, y, w, h) }
    probe("crop_zero_width") { Bitmap.createBitmap(source, x, y, 0, h) }
    probe("set_pixel_immutable") { source.setPixel(0, 0, 0) }
    probe("get_pixel_outside") { source.getPixel(source.width, 0) }
    probe("get_pixels_short_array") { source.getPixels(IntArray(3), 0, source.width, 0, 0, 2, 2) }
    probe("resize_other_size") {
        ImageProcessor.Builder().add(ResizeOp(h + 1, w, ResizeOp.ResizeMethod.BILINEAR)).build()
            .process(TensorImage.fromBitmap(crop))
    }
    val uint8 = TensorImage.fromBitmap(crop).buffer
    probe("uint8_buffer") { "${describe(uint8)} first=${uint8.get(0).toInt() and 0xff}" }
    val processor = ImageProcessor.Builder()
        .add(ResizeOp(h, w, ResizeOp.ResizeMethod.BILINEAR))
        .add(CastOp(DataType.FLOAT32))
        .build()
    val image = processor.process(TensorImage.fromBitmap(crop))
    probe("float_image") { "${image.dataType} ${image.width}x${image.height}" }
    val prefs = ContextProbe().getSharedPreferences("ftk_probe", Context.MODE_PRIVATE)
    prefs.edit().putString("a", "1").putString("b", "2").apply()
    prefs.edit().putString("c", "3").clear().commit()  // clear() applies first, whatever the call order
    prefs.edit().putString("d", null).apply()
    probe("prefs_keys") { prefs.all.keys.sorted().joinToString(",") }
    probe("prefs_same_store") {
        ContextProbe().getSharedPreferences("ftk_probe", Context.MODE_PRIVATE).getString("c", "?")
    }
    probe("prefs_other_name") { ContextProbe().getSharedPreferences("other", 0).all.size }
    probe("prefs_copy") { (prefs.all as MutableMap<String, Any?>).clear(); prefs.all.size }
    probe("prefs_wrong_type") { prefs.getInt("c", 0) }
    MemorySharedPreferences.resetAll()
    probe("log_written") { Log.i("ftk", "a log line") }
    probe("view_stub") { TextView(null).text }
    val buffer = image.buffer
    probe("float_buffer") { describe(buffer) }
    println("floats=" + floatsOf(buffer))
}

class ContextProbe : android.content.ContextWrapper(null)
"""

FIXTURE_R = """
package com.example.facerecognition

// What aapt generates from the fixture's layouts (the fixture app carries no res/ folder).
object R {
    object layout {
        const val activity_main = 1
        const val activity_scanner = 2
        const val activity_check_records = 3
        const val activity_user_input = 4
    }

    object id {
        const val previewView = 11
        const val result = 12
        const val register = 13
        const val check = 14
        const val save = 15
        const val name = 16
        const val phone = 17
    }
}
"""


# ------------------------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------------------------
def frame_bytes(rgb: np.ndarray) -> bytes:
    """width, height, then 0xFFRRGGBB per pixel, big-endian (DataInputStream)."""
    rgb = rgb.astype(np.uint32)
    argb = 0xFF000000 | (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    return struct.pack(">2i", rgb.shape[1], rgb.shape[0]) + argb.astype(">u4").tobytes()


def parse_result(stdout: bytes) -> tuple[str, np.ndarray | None]:
    """(status line, floats) of a harness answer."""
    lines = stdout.decode().splitlines()
    floats = np.array(lines[1].split(), np.float32) if len(lines) > 1 else None
    return lines[0], floats


def sensor_frame(upright: np.ndarray, rotation: int) -> np.ndarray:
    """The unmirrored frame a camera delivers when rotating it clockwise by ``rotation`` gives ``upright``."""
    return np.ascontiguousarray(np.rot90(upright, k=rotation // 90))


def timing(build: AppBuild, what: str, capsys) -> None:
    with capsys.disabled():
        print(f"\nkotlinc {what}: {build.kotlin_files} Kotlin files in {build.kotlinc_seconds:.1f} s "
              f"({build.kotlinc_cpu_seconds:.1f} s CPU)")


# ------------------------------------------------------------------------------------------------------------------
# (a) and (d): the real app
# ------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_app(shared_dir, tmp_path_factory) -> tuple[Path, Path, AppBuild]:
    """(the shared original, its copy, the build of the copy + ftk's generated files + the harness)."""
    original = shared_dir / "apps" / "face-data-matching-app"
    if not original.is_dir():
        pytest.skip(f"the real app is not in {original}")
    app = tmp_path_factory.mktemp("real-app") / original.name
    shutil.copytree(original, app)
    package = app_namespace(app_module(app))  # its activities live in the namespace package
    extra = generate_sources(default_spec("mobilefacenet"), package, "x.tflite", "0" * 64)
    extra["FtkStubCheck.kt"] = REAL_APP_HARNESS.replace("@APP_PACKAGE@", package)
    return original, app, compile_app(app, tmp_path_factory.mktemp("real-app-build"), extra)


@pytest.mark.shared
def test_real_app_compiles_unpatched_against_the_stubs(real_app, capsys):
    original, app, build = real_app
    timing(build, "the real app + ftk's generated files + a harness", capsys)
    kotlin = sorted(p.relative_to(app) for p in app.rglob("*.kt"))
    assert kotlin and all(filecmp.cmp(original / p, app / p, shallow=False) for p in kotlin)  # unpatched
    assert build.kotlin_files == len(list((app / "app" / "src" / "main" / "java").rglob("*.kt"))) + 3


@pytest.mark.shared
@pytest.mark.parametrize("activity", ["ScannerActivity", "CheckRecordsActivity"])
def test_real_app_crop_runs_on_the_jvm(real_app, activity):
    """The app's own cropAndResizeFace + convertBitmapToByteBuffer through the stubs: a box of exactly inputSize
    (112) needs no scaling, so its floats are the frame's pixels; any other size hits the unfaithful scaling."""
    _, app, build = real_app
    main_class = f"{HARNESS_PACKAGE}.FtkStubCheckKt"
    activity_class = f"{app_namespace(app_module(app))}.{activity}"
    rgb = np.random.default_rng(1).integers(0, 256, (150, 130, 3), dtype=np.uint8)

    def crop(box) -> tuple[str, np.ndarray | None]:
        stdin = frame_bytes(rgb) + struct.pack(">5i", 0, *box)
        return parse_result(run_main(build, main_class, stdin, args=["app-crop", activity_class]))

    status, floats = crop((10, 20, 122, 132))
    assert status == f"ok 112x112 direct=true native=true position=0 limit={112 * 112 * 3 * 4}"
    np.testing.assert_array_equal(floats.reshape(112, 112, 3), rgb[20:132, 10:122].astype(np.float32))
    status, _ = crop((-5, 20, 107, 132))  # clipped at the frame's edge to 107 wide: Android would scale it
    assert status.startswith("error java.lang.UnsupportedOperationException: not faithful: Bitmap.createScaledBitmap")


@pytest.mark.shared
def test_generated_ftk_sources_give_crop_face_input_inside_the_real_app(real_app):
    """FtkFaceInput (compiled in the app's package) reads the stubs' ImageProxy, Bitmap and Face as the app will."""
    _, _, build = real_app
    spec = default_spec("mobilefacenet")
    rng = np.random.default_rng(2)
    upright = rng.integers(0, 256, (96, 80, 3), dtype=np.uint8)
    marks = np.float32([[28, 38], [52, 37], [40, 52], [31, 66], [50, 65]])  # image-left eye first (template order)
    box = (14, 20, 66, 80)
    expected = crop_face(Image.fromarray(upright), spec, list(map(float, box)), [tuple(map(float, p)) for p in marks])
    subject_order = marks[[1, 0, 2, 4, 3]]  # ML Kit's LEFT_EYE is the subject's: the image-right eye, unmirrored
    for rotation in ROTATIONS:
        stdin = (frame_bytes(sensor_frame(upright, rotation)) + struct.pack(">5i", rotation, *box)
                 + subject_order.astype(">f4").tobytes())
        status, floats = parse_result(run_main(build, f"{HARNESS_PACKAGE}.FtkStubCheckKt", stdin, args=["ftk-input"]))
        assert status.startswith("ok direct=true native=true position=0"), (rotation, status)
        got = floats.reshape(expected.shape)
        assert np.abs(got - expected.astype(np.float32)).max() <= 1.0, rotation


# ------------------------------------------------------------------------------------------------------------------
# (b) and (c): the fixture app (no ../shared needed)
# ------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fixture_build(tmp_path_factory) -> AppBuild:
    app = tmp_path_factory.mktemp("fixture-app") / FIXTURE_APP.name
    shutil.copytree(FIXTURE_APP, app)
    return compile_app(app, tmp_path_factory.mktemp("fixture-build"),
                       {"R.kt": FIXTURE_R, "FtkStubCheck.kt": STUB_CHECK_HARNESS})


def test_fixture_app_compiles_against_the_stubs(fixture_build, capsys):
    timing(fixture_build, "the fixture app + a harness", capsys)
    assert fixture_build.kotlin_files == len(list(FIXTURE_APP.rglob("*.kt"))) + 2


def test_faithful_stubs_match_numpy(fixture_build):
    rgb = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    x, y, w, h = 7, 5, 40, 30
    stdin = frame_bytes(rgb) + struct.pack(">4i", x, y, w, h)
    out = run_main(fixture_build, f"{HARNESS_PACKAGE}.FtkStubCheckKt", stdin)
    results = dict(line.split("=", 1) for line in out.decode().splitlines())
    floats = np.array(results.pop("floats").split(), np.float32)
    np.testing.assert_array_equal(floats.reshape(h, w, 3), rgb[y:y + h, x:x + w].astype(np.float32))
    assert results.pop("prefs_wrong_type").startswith("error java.lang.ClassCastException")
    iae = "error java.lang.IllegalArgumentException: "
    assert results == {
        "source_mutable": "false", "crop_mutable": "true", "crop_size": f"{w}x{h}",
        "whole_immutable_is_same": "true", "scaled_same_size_of_immutable_is_same": "true",
        "scaled_same_size_of_mutable_is_copy": "true true",
        "scaled_other_size": "error java.lang.UnsupportedOperationException: not faithful: Bitmap.createScaledBitmap"
                             f" from {w}x{h} to {w + 1}x{h} (Android's Skia resampling is not reproduced on the JVM)",
        "crop_past_right": iae + "x + width must be <= bitmap.width()",
        "crop_negative_x": iae + "x must be >= 0",
        "crop_zero_width": iae + "width must be > 0",
        "set_pixel_immutable": "error java.lang.IllegalStateException: null",
        "get_pixel_outside": iae + "x must be < bitmap.width()",
        "get_pixels_short_array": "error java.lang.ArrayIndexOutOfBoundsException: null",
        "resize_other_size": f"error java.lang.UnsupportedOperationException: not faithful: ResizeOp from {w}x{h} to"
                             f" {w}x{h + 1} (Android's bitmap scaling is not reproduced on the JVM)",
        # TFLite support leaves a uint8 buffer loaded from a Bitmap rewound, a float one at 0 (a FloatBuffer view)
        "uint8_buffer": f"direct=true native=true position=0 limit={w * h * 3} first={rgb[y, x, 0]}",
        "float_image": f"FLOAT32 {w}x{h}",
        "prefs_keys": "c", "prefs_same_store": "3", "prefs_other_name": "0", "prefs_copy": "1",
        "log_written": "0",
        "view_stub": "error java.lang.UnsupportedOperationException: stub",
        "float_buffer": f"direct=true native=true position=0 limit={w * h * 3 * 4}",
    }
    logged = run_main(fixture_build, f"{HARNESS_PACKAGE}.FtkStubCheckKt", stdin, properties={"ftk.log": "1"})
    assert f"log_written={len('I/ftk: a log line')}" in logged.decode()  # the line went to stderr


def test_every_stub_is_listed_in_the_readme():
    readme = (STUBS_DIR / "README.md").read_text(encoding="utf-8")
    for source in stub_sources():
        assert f"`{source.stem}`" in readme, f"{source.name} is not described in android_stubs/README.md"
