package org.tensorflow.lite;

import java.nio.ByteBuffer;

/** Signature stub of an interpreter tensor (an interface since TensorFlow Lite 2.7). */
public interface Tensor {
    DataType dataType();

    int numDimensions();

    int numBytes();

    int numElements();

    int[] shape();

    int[] shapeSignature();

    int index();

    String name();

    QuantizationParams quantizationParams();

    ByteBuffer asReadOnlyBuffer();

    final class QuantizationParams {
        private final float scale;
        private final int zeroPoint;

        public QuantizationParams(float scale, int zeroPoint) {
            this.scale = scale;
            this.zeroPoint = zeroPoint;
        }

        public float getScale() { return scale; }

        public int getZeroPoint() { return zeroPoint; }
    }
}
