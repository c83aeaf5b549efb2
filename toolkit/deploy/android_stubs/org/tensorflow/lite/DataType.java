package org.tensorflow.lite;

/** Faithful: TensorFlow Lite 2.12's element types and their byte sizes. */
public enum DataType {
    FLOAT32(4), INT32(4), UINT8(1), INT64(8), STRING(-1), BOOL(1), INT16(2), INT8(1);

    private final int byteSize;

    DataType(int byteSize) { this.byteSize = byteSize; }

    /** Bytes per element; -1 for STRING (variable length). */
    public int byteSize() { return byteSize; }
}
