package org.tensorflow.lite.support.image;

import android.graphics.Bitmap;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.tensorflow.lite.DataType;
import org.tensorflow.lite.support.tensorbuffer.TensorBuffer;

/**
 * Faithful for RGB images: holds either an ARGB_8888 Bitmap (by reference, as TFLite support does) or a TensorBuffer
 * of shape (h, w, 3) or (1, h, w, 3). getTensorBuffer()/getBuffer() give the pixels as R, G, B per pixel, row-major,
 * alpha dropped, in this image's data type: a Bitmap is converted anew on every call (UINT8: a rewound direct
 * native-order buffer; FLOAT32: 0..255 floats); a buffer of another type is converted with TensorBuffer.createFrom.
 * Not reproduced: grayscale and YUV images, ImageProperties, getBitmap() of a buffer-backed image.
 */
public class TensorImage {
    private final DataType dataType;
    private Bitmap bitmap;
    private TensorBuffer tensorBuffer;

    public TensorImage() { this(DataType.UINT8); }

    public TensorImage(DataType dataType) {
        if (dataType != DataType.UINT8 && dataType != DataType.FLOAT32) {
            throw new IllegalArgumentException(
                    "Illegal data type for TensorImage: Only FLOAT32 and UINT8 are accepted");
        }
        this.dataType = dataType;
    }

    /** A UINT8 TensorImage holding {@code bitmap}. */
    public static TensorImage fromBitmap(Bitmap bitmap) {
        TensorImage image = new TensorImage();
        image.load(bitmap);
        return image;
    }

    public static TensorImage createFrom(TensorImage src, DataType dataType) {
        TensorImage dst = new TensorImage(dataType);
        if (src.bitmap != null) {
            dst.load(src.bitmap.copy(src.bitmap.getConfig(), src.bitmap.isMutable()));
        } else {
            dst.load(TensorBuffer.createFrom(src.requireLoaded(), src.tensorBuffer.getDataType()));
        }
        return dst;
    }

    public void load(Bitmap bitmap) {
        if (bitmap == null) {
            throw new NullPointerException("Cannot load null bitmap.");
        }
        if (bitmap.getConfig() != Bitmap.Config.ARGB_8888) {
            throw new IllegalArgumentException("Only supports loading ARGB_8888 bitmaps.");
        }
        this.bitmap = bitmap;
        this.tensorBuffer = null;
    }

    public void load(float[] pixels, int[] shape) {
        TensorBuffer buffer = TensorBuffer.createDynamic(getDataType());
        buffer.loadArray(pixels, shape);
        load(buffer);
    }

    public void load(int[] pixels, int[] shape) {
        TensorBuffer buffer = TensorBuffer.createDynamic(getDataType());
        buffer.loadArray(pixels, shape);
        load(buffer);
    }

    /** An RGB buffer of shape (h, w, 3) or (1, h, w, 3), held by reference. */
    public void load(TensorBuffer buffer) {
        int[] shape = buffer.getShape();
        boolean rgb = (shape.length == 3 || (shape.length == 4 && shape[0] == 1)) && shape[shape.length - 1] == 3;
        if (!rgb) {
            throw new IllegalArgumentException("The shape of a RGB image should be (h, w, c) or (1, h, w, c), and"
                    + " channels representing R, G, B in order.");
        }
        this.tensorBuffer = buffer;
        this.bitmap = null;
    }

    public Bitmap getBitmap() {
        if (bitmap != null) {
            return bitmap;
        }
        requireLoaded();
        throw new UnsupportedOperationException(
                "not faithful: TensorImage.getBitmap of a TensorBuffer-backed image is not reproduced on the JVM");
    }

    public ByteBuffer getBuffer() { return getTensorBuffer().getBuffer(); }

    public TensorBuffer getTensorBuffer() {
        if (bitmap != null) {
            return convertBitmap(bitmap, dataType);
        }
        TensorBuffer buffer = requireLoaded();
        return buffer.getDataType() == dataType ? buffer : TensorBuffer.createFrom(buffer, dataType);
    }

    public DataType getDataType() { return dataType; }

    public int getWidth() {
        if (bitmap != null) {
            return bitmap.getWidth();
        }
        int[] shape = requireLoaded().getShape();
        return shape[shape.length - 2];
    }

    public int getHeight() {
        if (bitmap != null) {
            return bitmap.getHeight();
        }
        int[] shape = requireLoaded().getShape();
        return shape[shape.length - 3];
    }

    private TensorBuffer requireLoaded() {
        if (tensorBuffer == null) {
            throw new IllegalStateException("No image has been loaded yet.");
        }
        return tensorBuffer;
    }

    /** R, G, B of each pixel, row by row (the alpha byte is dropped). */
    private static TensorBuffer convertBitmap(Bitmap bitmap, DataType dataType) {
        int w = bitmap.getWidth();
        int h = bitmap.getHeight();
        int[] argb = new int[w * h];
        bitmap.getPixels(argb, 0, w, 0, 0, w, h);
        int[] shape = new int[] {h, w, 3};
        TensorBuffer buffer = TensorBuffer.createDynamic(dataType);
        if (dataType == DataType.UINT8) {
            ByteBuffer bytes = ByteBuffer.allocateDirect(w * h * 3).order(ByteOrder.nativeOrder());
            for (int pixel : argb) {
                bytes.put((byte) (pixel >> 16)).put((byte) (pixel >> 8)).put((byte) pixel);
            }
            buffer.loadBuffer(bytes, shape);
        } else {
            float[] values = new float[w * h * 3];
            for (int i = 0, j = 0; i < argb.length; i++) {
                values[j++] = (argb[i] >> 16) & 0xff;
                values[j++] = (argb[i] >> 8) & 0xff;
                values[j++] = argb[i] & 0xff;
            }
            buffer.loadArray(values, shape);
        }
        return buffer;
    }
}
