package org.tensorflow.lite.support.tensorbuffer;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import org.tensorflow.lite.DataType;

/**
 * Faithful: TFLite support 0.4.3's TensorBuffer for FLOAT32 and UINT8. The data lives in a direct ByteBuffer in
 * native byte order; a dynamic buffer reallocates when a load changes its element count. getBuffer() returns that
 * buffer itself, positioned where the last operation left it (see the subclasses).
 */
public abstract class TensorBuffer {
    protected ByteBuffer buffer;
    protected int[] shape;
    protected int flatSize = -1;
    protected final boolean isDynamic;

    protected TensorBuffer(int[] shape) {
        isDynamic = false;
        allocate(shape);
    }

    protected TensorBuffer() {
        isDynamic = true;
        allocate(new int[] {0});
    }

    public static TensorBuffer createFixedSize(int[] shape, DataType dataType) {
        switch (dataType) {
            case FLOAT32:
                return new TensorBufferFloat(shape);
            case UINT8:
                return new TensorBufferUint8(shape);
            default:
                throw new AssertionError("TensorBuffer does not support data type: " + dataType);
        }
    }

    public static TensorBuffer createDynamic(DataType dataType) {
        switch (dataType) {
            case FLOAT32:
                return new TensorBufferFloat();
            case UINT8:
                return new TensorBufferUint8();
            default:
                throw new AssertionError("TensorBuffer does not support data type: " + dataType);
        }
    }

    /** A deep copy converted to {@code dataType} (through int values, except float to float). */
    public static TensorBuffer createFrom(TensorBuffer source, DataType dataType) {
        if (source == null) {
            throw new NullPointerException("Cannot create a buffer from null");
        }
        TensorBuffer result = source.isDynamic() ? createDynamic(dataType) : createFixedSize(source.shape, dataType);
        if (source.getDataType() == DataType.FLOAT32 && dataType == DataType.FLOAT32) {
            result.loadArray(source.getFloatArray(), source.shape);
        } else {
            result.loadArray(source.getIntArray(), source.shape);
        }
        return result;
    }

    public ByteBuffer getBuffer() { return buffer; }

    public int getFlatSize() { return flatSize; }

    public int[] getShape() { return Arrays.copyOf(shape, shape.length); }

    public boolean isDynamic() { return isDynamic; }

    public abstract DataType getDataType();

    public abstract float[] getFloatArray();

    public abstract float getFloatValue(int absIndex);

    public abstract int[] getIntArray();

    public abstract int getIntValue(int absIndex);

    public abstract int getTypeSize();

    public abstract void loadArray(int[] src, int[] shape);

    public void loadArray(int[] src) { loadArray(src, shape); }

    public abstract void loadArray(float[] src, int[] shape);

    public void loadArray(float[] src) { loadArray(src, shape); }

    /** Takes {@code buffer} itself (no copy), rewound. */
    public void loadBuffer(ByteBuffer buffer, int[] shape) {
        if (buffer == null) {
            throw new NullPointerException("Byte buffer cannot be null.");
        }
        int size = computeFlatSize(shape);
        if (buffer.limit() != getTypeSize() * size) {
            throw new IllegalArgumentException("The size of byte buffer and the shape do not match.");
        }
        if (!isDynamic && size != flatSize) {
            throw new IllegalArgumentException(
                    "The size of byte buffer and the size of the tensor buffer do not match.");
        }
        flatSize = size;
        this.shape = shape.clone();
        buffer.rewind();
        this.buffer = buffer;
    }

    public void loadBuffer(ByteBuffer buffer) { loadBuffer(buffer, shape); }

    protected static int computeFlatSize(int[] shape) {
        if (shape == null) {
            throw new NullPointerException("Shape cannot be null.");
        }
        int product = 1;
        for (int s : shape) {
            product *= s;
        }
        return product;
    }

    /** Before a load: a dynamic buffer takes the new shape (reallocating on a size change), a fixed one checks it. */
    protected void resize(int[] shape) {
        if (isDynamic) {
            allocate(shape);
        } else {
            if (!Arrays.equals(shape, this.shape)) {
                throw new IllegalArgumentException();
            }
            this.shape = shape.clone();
        }
    }

    /** Checks a load's array against its shape (the message TFLite support gives). */
    protected static void checkLoad(Object src, int length, int[] shape) {
        if (src == null) {
            throw new NullPointerException("The array to be loaded cannot be null.");
        }
        if (length != computeFlatSize(shape)) {
            throw new IllegalArgumentException(
                    "The size of the array to be loaded does not match the specified shape.");
        }
    }

    private void allocate(int[] shape) {
        if (shape == null) {
            throw new NullPointerException("TensorBuffer shape cannot be null.");
        }
        for (int s : shape) {
            if (s < 0) {
                throw new IllegalArgumentException("Values in TensorBuffer shape should be non-negative.");
            }
        }
        int size = computeFlatSize(shape);
        this.shape = shape.clone();
        if (size == flatSize) {
            return;
        }
        flatSize = size;
        buffer = ByteBuffer.allocateDirect(size * getTypeSize());
        buffer.order(ByteOrder.nativeOrder());
    }
}
