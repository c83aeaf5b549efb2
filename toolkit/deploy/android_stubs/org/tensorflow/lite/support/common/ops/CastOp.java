package org.tensorflow.lite.support.common.ops;

import org.tensorflow.lite.DataType;
import org.tensorflow.lite.support.common.TensorOperator;
import org.tensorflow.lite.support.tensorbuffer.TensorBuffer;

/** Faithful: casts a TensorBuffer to UINT8 or FLOAT32 (a buffer already of that type is returned as is). */
public class CastOp implements TensorOperator {
    private final DataType destinationType;

    public CastOp(DataType destinationType) {
        if (destinationType != DataType.UINT8 && destinationType != DataType.FLOAT32) {
            throw new IllegalArgumentException("Destination type " + destinationType + " is not supported.");
        }
        this.destinationType = destinationType;
    }

    @Override
    public TensorBuffer apply(TensorBuffer input) {
        return input.getDataType() == destinationType ? input : TensorBuffer.createFrom(input, destinationType);
    }
}
