package org.tensorflow.lite.support.image.ops;

import android.graphics.PointF;
import org.tensorflow.lite.support.common.TensorOperator;
import org.tensorflow.lite.support.image.ImageOperator;
import org.tensorflow.lite.support.image.TensorImage;
import org.tensorflow.lite.support.tensorbuffer.TensorBuffer;

/** Faithful: a TensorOperator applied to an image's buffer; the result is a new image of the result's type. */
public class TensorOperatorWrapper implements ImageOperator {
    private final TensorOperator tensorOp;

    public TensorOperatorWrapper(TensorOperator op) { this.tensorOp = op; }

    @Override
    public TensorImage apply(TensorImage image) {
        if (image == null) {
            throw new NullPointerException("Op cannot apply on null image.");
        }
        TensorBuffer result = tensorOp.apply(image.getTensorBuffer());
        TensorImage out = new TensorImage(result.getDataType());
        out.load(result);
        return out;
    }

    @Override
    public int getOutputImageHeight(int inputImageHeight, int inputImageWidth) { return inputImageHeight; }

    @Override
    public int getOutputImageWidth(int inputImageHeight, int inputImageWidth) { return inputImageWidth; }

    @Override
    public PointF inverseTransform(PointF point, int inputImageHeight, int inputImageWidth) { return point; }
}
