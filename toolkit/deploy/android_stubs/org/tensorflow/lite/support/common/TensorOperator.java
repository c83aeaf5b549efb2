package org.tensorflow.lite.support.common;

import org.tensorflow.lite.support.tensorbuffer.TensorBuffer;

/** TFLite support 0.4.3: an operator on TensorBuffers (CastOp is one). */
public interface TensorOperator extends Operator<TensorBuffer> {
    @Override
    TensorBuffer apply(TensorBuffer input);
}
