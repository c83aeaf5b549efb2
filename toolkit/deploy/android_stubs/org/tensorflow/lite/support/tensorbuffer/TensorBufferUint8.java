package org.tensorflow.lite.support.tensorbuffer;

import org.tensorflow.lite.DataType;

/**
 * Faithful: uint8 elements; loads clamp to [0, 255]. As in TFLite support, a load or a get*Array reads or writes
 * the byte buffer with relative operations, which leaves its position at the end.
 */
public final class TensorBufferUint8 extends TensorBuffer {
    TensorBufferUint8(int[] shape) { super(shape); }

    TensorBufferUint8() { super(); }

    @Override
    public DataType getDataType() { return DataType.UINT8; }

    @Override
    public float[] getFloatArray() {
        int[] ints = getIntArray();
        float[] values = new float[ints.length];
        for (int i = 0; i < ints.length; i++) {
            values[i] = ints[i];
        }
        return values;
    }

    @Override
    public float getFloatValue(int index) { return buffer.get(index) & 0xff; }

    @Override
    public int[] getIntArray() {
        buffer.rewind();
        byte[] bytes = new byte[flatSize];
        buffer.get(bytes);
        int[] values = new int[flatSize];
        for (int i = 0; i < flatSize; i++) {
            values[i] = bytes[i] & 0xff;
        }
        return values;
    }

    @Override
    public int getIntValue(int index) { return buffer.get(index) & 0xff; }

    @Override
    public int getTypeSize() { return DataType.UINT8.byteSize(); }

    @Override
    public void loadArray(float[] src, int[] shape) {
        checkLoad(src, src == null ? 0 : src.length, shape);
        byte[] bytes = new byte[src.length];
        for (int i = 0; i < src.length; i++) {
            bytes[i] = (byte) Math.max(Math.min(src[i], 255.0), 0.0);
        }
        store(bytes, shape);
    }

    @Override
    public void loadArray(int[] src, int[] shape) {
        checkLoad(src, src == null ? 0 : src.length, shape);
        byte[] bytes = new byte[src.length];
        for (int i = 0; i < src.length; i++) {
            bytes[i] = (byte) Math.max(Math.min(src[i], 255), 0);
        }
        store(bytes, shape);
    }

    private void store(byte[] bytes, int[] shape) {
        resize(shape);
        buffer.rewind();
        buffer.put(bytes);
    }
}
