package org.tensorflow.lite.support.tensorbuffer;

import org.tensorflow.lite.DataType;

/** Faithful: float32 elements, written through a FloatBuffer view (the byte buffer stays at position 0). */
public final class TensorBufferFloat extends TensorBuffer {
    TensorBufferFloat(int[] shape) { super(shape); }

    TensorBufferFloat() { super(); }

    @Override
    public DataType getDataType() { return DataType.FLOAT32; }

    @Override
    public float[] getFloatArray() {
        buffer.rewind();
        float[] values = new float[flatSize];
        buffer.asFloatBuffer().get(values);
        return values;
    }

    @Override
    public float getFloatValue(int absIndex) { return buffer.getFloat(absIndex * 4); }

    /** Truncated toward zero, as a Java (int) cast does. */
    @Override
    public int[] getIntArray() {
        float[] values = getFloatArray();
        int[] ints = new int[values.length];
        for (int i = 0; i < values.length; i++) {
            ints[i] = (int) values[i];
        }
        return ints;
    }

    @Override
    public int getIntValue(int absIndex) { return (int) getFloatValue(absIndex); }

    @Override
    public int getTypeSize() { return DataType.FLOAT32.byteSize(); }

    @Override
    public void loadArray(float[] src, int[] shape) {
        checkLoad(src, src == null ? 0 : src.length, shape);
        resize(shape);
        buffer.rewind();
        buffer.asFloatBuffer().put(src);
    }

    @Override
    public void loadArray(int[] src, int[] shape) {
        checkLoad(src, src == null ? 0 : src.length, shape);
        float[] values = new float[src.length];
        for (int i = 0; i < src.length; i++) {
            values[i] = (float) src[i];
        }
        loadArray(values, shape);
    }
}
