// ftk's JVM driver for the generated FtkFacePreprocessor (not deployed into the app): it lets ftk run the app's
// preprocessing on real faces and compare it with its own crops. Requests on stdin, replies on stdout, big-endian:
//   request: kind (0 align, 1 box, 2 quit), width, height, rotationDegrees, mirrored (0/1): int32 each;
//            then 10 float32 landmarks (align) or 4 float32 box values (box); then width * height int32 ARGB pixels
//   reply:   status int32 (0 ok: INPUT_SIZE * INPUT_SIZE * 3 float32 follow; 1 error: a modified-UTF-8 message)
package @PACKAGE@

import java.io.BufferedInputStream
import java.io.BufferedOutputStream
import java.io.DataInputStream
import java.io.DataOutputStream
import java.io.EOFException
import java.nio.ByteBuffer

fun main(args: Array<String>) {
    val input = DataInputStream(BufferedInputStream(System.`in`, 1 shl 20))
    val output = DataOutputStream(BufferedOutputStream(System.out, 1 shl 20))
    while (true) {
        val kind = try { input.readInt() } catch (e: EOFException) { break }
        if (kind == 2) break
        val width = input.readInt()
        val height = input.readInt()
        val rotation = input.readInt()
        val mirrored = input.readInt() != 0
        val points = FloatArray(if (kind == 0) 10 else 4) { input.readFloat() }
        val bytes = ByteArray(4 * width * height)
        input.readFully(bytes)
        val argb = IntArray(width * height)
        ByteBuffer.wrap(bytes).asIntBuffer().get(argb)
        try {
            val tensor = if (kind == 0) {
                FtkFacePreprocessor.alignedInput(argb, width, height, rotation, points, mirrored)
            } else {
                FtkFacePreprocessor.boxInput(argb, width, height, rotation, points[0], points[1], points[2], points[3],
                    mirrored)
            }
            val reply = ByteBuffer.allocate(4 * tensor.size)
            reply.asFloatBuffer().put(tensor)
            output.writeInt(0)
            output.write(reply.array())
        } catch (e: IllegalArgumentException) {
            output.writeInt(1)
            output.writeUTF(e.message ?: e.toString())
        }
        output.flush()
    }
    output.flush()
}
