package org.tensorflow.lite.support.image;

import java.util.ArrayList;
import java.util.List;
import org.tensorflow.lite.support.common.Operator;
import org.tensorflow.lite.support.common.SequentialProcessor;
import org.tensorflow.lite.support.common.TensorOperator;
import org.tensorflow.lite.support.image.ops.TensorOperatorWrapper;

/**
 * Faithful: runs its operators in order; a TensorOperator is wrapped so that it works on the image's TensorBuffer
 * and the result is a new TensorImage of the buffer's data type (how CastOp(FLOAT32) turns a UINT8 image into a
 * FLOAT32 one).
 */
public class ImageProcessor extends SequentialProcessor<TensorImage> {
    private ImageProcessor(List<Operator<TensorImage>> operators) { super(operators); }

    @Override
    public TensorImage process(TensorImage image) { return super.process(image); }

    public static class Builder {
        private final List<Operator<TensorImage>> operators = new ArrayList<>();

        public Builder() {}

        public Builder add(ImageOperator op) {
            operators.add(op);
            return this;
        }

        public Builder add(TensorOperator op) { return add(new TensorOperatorWrapper(op)); }

        public ImageProcessor build() { return new ImageProcessor(operators); }
    }
}
