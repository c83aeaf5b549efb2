package androidx.camera.core;

import java.util.concurrent.Executor;

/** Signature stub (constants: real values). */
public final class ImageAnalysis extends UseCase {
    public static final int STRATEGY_KEEP_ONLY_LATEST = 0;
    public static final int STRATEGY_BLOCK_PRODUCER = 1;
    public static final int OUTPUT_IMAGE_FORMAT_YUV_420_888 = 1;
    public static final int OUTPUT_IMAGE_FORMAT_RGBA_8888 = 2;

    private ImageAnalysis() {}

    public void setAnalyzer(Executor executor, Analyzer analyzer) { throw new UnsupportedOperationException("stub"); }

    public void clearAnalyzer() { throw new UnsupportedOperationException("stub"); }

    public int getTargetRotation() { throw new UnsupportedOperationException("stub"); }

    public void setTargetRotation(int rotation) { throw new UnsupportedOperationException("stub"); }

    /** CameraX 1.3's Analyzer has further default methods (target resolution, coordinate system); not stubbed. */
    public interface Analyzer {
        void analyze(ImageProxy image);
    }

    public static final class Builder {
        public Builder() { throw new UnsupportedOperationException("stub"); }

        public Builder setTargetRotation(int rotation) { throw new UnsupportedOperationException("stub"); }

        public Builder setBackpressureStrategy(int strategy) { throw new UnsupportedOperationException("stub"); }

        public Builder setOutputImageFormat(int outputImageFormat) {
            throw new UnsupportedOperationException("stub");
        }

        public Builder setOutputImageRotationEnabled(boolean outputImageRotationEnabled) {
            throw new UnsupportedOperationException("stub");
        }

        public ImageAnalysis build() { throw new UnsupportedOperationException("stub"); }
    }
}
