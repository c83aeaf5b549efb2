package org.tensorflow.lite.support.image;

import android.graphics.PointF;
import org.tensorflow.lite.support.common.Operator;

/** TFLite support 0.4.3: an operator on TensorImages that may change their size. */
public interface ImageOperator extends Operator<TensorImage> {
    @Override
    TensorImage apply(TensorImage image);

    int getOutputImageHeight(int inputImageHeight, int inputImageWidth);

    int getOutputImageWidth(int inputImageHeight, int inputImageWidth);

    PointF inverseTransform(PointF point, int inputImageHeight, int inputImageWidth);
}
