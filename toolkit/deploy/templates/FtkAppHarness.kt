// ftk's JVM driver for an app's OWN (patched) activity code (never deployed into the app). It instantiates the
// activity class named in args[0] against ftk's Android signature stubs, and calls its crop function (args[1]:
// ImageProxy, Face -> Bitmap?) and its input builder (args[2]: Bitmap -> ByteBuffer) exactly as the app's analyzer
// does; and, with args[3] and args[4] (its matching function, String? of FloatArray, and its SharedPreferences
// field), its own record matching. Requests on stdin, replies on stdout, big-endian:
//   request: kind (0 crop, 2 quit), width, height, rotationDegrees, box left, top, right, bottom (int32 each: ML Kit
//            boxes are Rects), landmark count n (0 or 5), then n x (ML Kit FaceLandmark type int32, x float32,
//            y float32), then width * height int32 ARGB pixels of the frame as the sensor delivered it
//   reply:   status int32: 0 ok, then the input buffer's float count int32 and its float32 values; 1 skipped (the
//            crop returned null), 2 error, then a modified-UTF-8 message
//   request: kind 3 (match), record count n, n x (modified-UTF-8 key, modified-UTF-8 value), embedding length m,
//            m x float32: the store is emptied, filled with the records, then the matching function is called
//   reply:   status int32 0, then 1 and the matched key (modified UTF-8), or 0 for no match; 2 error + message
package ftk.jvm

import android.graphics.Bitmap
import android.graphics.PointF
import android.graphics.Rect
import androidx.camera.core.ImageProxy
import com.google.mlkit.vision.face.Face
import java.io.BufferedInputStream
import java.io.BufferedOutputStream
import java.io.DataInputStream
import java.io.DataOutputStream
import java.io.EOFException
import java.lang.reflect.InvocationTargetException
import java.nio.ByteBuffer

fun main(args: Array<String>) {
    val activityClass = Class.forName(args[0])
    val activity = activityClass.getDeclaredConstructor().newInstance()
    val crop = activityClass.getDeclaredMethod(args[1], ImageProxy::class.java, Face::class.java)
    crop.isAccessible = true
    val toInput = activityClass.getDeclaredMethod(args[2], Bitmap::class.java)
    toInput.isAccessible = true
    val match = if (args.size > 4) activityClass.getDeclaredMethod(args[3], FloatArray::class.java) else null
    match?.isAccessible = true
    val store = MemorySharedPreferences.forName("ftk-harness")
    if (args.size > 4) {
        val field = activityClass.getDeclaredField(args[4])
        field.isAccessible = true
        field.set(activity, store)
    }
    val input = DataInputStream(BufferedInputStream(System.`in`, 1 shl 20))
    val output = DataOutputStream(BufferedOutputStream(System.out, 1 shl 20))
    while (true) {
        val kind = try { input.readInt() } catch (e: EOFException) { break }
        if (kind == 2) break
        if (kind == 3) {
            matchRecords(input, output, activity, match, store)
            continue
        }
        val width = input.readInt()
        val height = input.readInt()
        val rotation = input.readInt()
        val box = Rect(input.readInt(), input.readInt(), input.readInt(), input.readInt())
        val landmarks = HashMap<Int, PointF>()
        repeat(input.readInt()) { landmarks[input.readInt()] = PointF(input.readFloat(), input.readFloat()) }
        val bytes = ByteArray(4 * width * height)
        input.readFully(bytes)
        val argb = IntArray(width * height)
        ByteBuffer.wrap(bytes).asIntBuffer().get(argb)
        try {
            val frame = Bitmap.createBitmap(argb, width, height, Bitmap.Config.ARGB_8888)
            val bitmap = crop.invoke(activity, TestImageProxy(frame, rotation), Face(box, landmarks)) as Bitmap?
            if (bitmap == null) {
                output.writeInt(1)
                output.writeUTF("the app's crop returned null (a landmark is missing): the frame is skipped")
            } else {
                val raw = toInput.invoke(activity, bitmap) as ByteBuffer
                val buffer = raw.duplicate().order(raw.order())  // a duplicate starts big-endian: keep the app's
                buffer.rewind()
                val floats = buffer.asFloatBuffer()
                output.writeInt(0)
                output.writeInt(floats.remaining())
                while (floats.hasRemaining()) output.writeFloat(floats.get())
            }
        } catch (e: InvocationTargetException) {
            output.writeInt(2)
            output.writeUTF((e.targetException.toString()).take(500))
        }
        output.flush()
    }
    output.flush()
}

private fun matchRecords(input: DataInputStream, output: DataOutputStream, activity: Any,
                         match: java.lang.reflect.Method?, store: MemorySharedPreferences) {
    val editor = store.edit().clear()
    repeat(input.readInt()) { editor.putString(input.readUTF(), input.readUTF()) }
    editor.commit()
    val embedding = FloatArray(input.readInt()) { input.readFloat() }
    try {
        val key = match!!.invoke(activity, embedding) as String?
        output.writeInt(0)
        output.writeInt(if (key == null) 0 else 1)
        if (key != null) output.writeUTF(key)
    } catch (e: Exception) {
        output.writeInt(2)
        output.writeUTF((if (e is InvocationTargetException) e.targetException else e).toString().take(500))
    }
    output.flush()
}
