package org.tensorflow.lite.support.image.ops;

import android.graphics.Bitmap;
import android.graphics.PointF;
import org.tensorflow.lite.support.image.ImageOperator;
import org.tensorflow.lite.support.image.TensorImage;

/**
 * Faithful only when the image already has the target size: then, as in TFLite support, the image's bitmap goes
 * through Bitmap.createScaledBitmap (which keeps its pixels). Any other size throws: the filtered scaling Android
 * does for it (Skia) is not reproduced.
 */
public class ResizeOp implements ImageOperator {
    public enum ResizeMethod {
        BILINEAR, NEAREST_NEIGHBOR
    }

    private final int targetHeight;
    private final int targetWidth;
    private final boolean useBilinear;

    public ResizeOp(int targetHeight, int targetWidth, ResizeMethod resizeMethod) {
        this.targetHeight = targetHeight;
        this.targetWidth = targetWidth;
        this.useBilinear = resizeMethod == ResizeMethod.BILINEAR;
    }

    @Override
    public TensorImage apply(TensorImage image) {
        if (image.getWidth() != targetWidth || image.getHeight() != targetHeight) {
            throw new UnsupportedOperationException("not faithful: ResizeOp from " + image.getWidth() + "x"
                    + image.getHeight() + " to " + targetWidth + "x" + targetHeight
                    + " (Android's bitmap scaling is not reproduced on the JVM)");
        }
        Bitmap scaled = Bitmap.createScaledBitmap(image.getBitmap(), targetWidth, targetHeight, useBilinear);
        image.load(scaled);
        return image;
    }

    @Override
    public int getOutputImageHeight(int inputImageHeight, int inputImageWidth) { return targetHeight; }

    @Override
    public int getOutputImageWidth(int inputImageHeight, int inputImageWidth) { return targetWidth; }

    @Override
    public PointF inverseTransform(PointF point, int inputImageHeight, int inputImageWidth) {
        return new PointF(point.x * inputImageWidth / targetWidth, point.y * inputImageHeight / targetHeight);
    }
}
