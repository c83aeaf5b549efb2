package com.google.mlkit.vision.face;

import java.util.Objects;
import java.util.concurrent.Executor;

/** Value holder: ML Kit's options and Builder (real constant values and defaults); nothing detects. */
public class FaceDetectorOptions {
    public static final int LANDMARK_MODE_NONE = 1;
    public static final int LANDMARK_MODE_ALL = 2;
    public static final int CONTOUR_MODE_NONE = 1;
    public static final int CONTOUR_MODE_ALL = 2;
    public static final int CLASSIFICATION_MODE_NONE = 1;
    public static final int CLASSIFICATION_MODE_ALL = 2;
    public static final int PERFORMANCE_MODE_FAST = 1;
    public static final int PERFORMANCE_MODE_ACCURATE = 2;

    private final int landmarkMode;
    private final int contourMode;
    private final int classificationMode;
    private final int performanceMode;
    private final boolean trackingEnabled;
    private final float minFaceSize;

    private FaceDetectorOptions(Builder b) {
        this.landmarkMode = b.landmarkMode;
        this.contourMode = b.contourMode;
        this.classificationMode = b.classificationMode;
        this.performanceMode = b.performanceMode;
        this.trackingEnabled = b.trackingEnabled;
        this.minFaceSize = b.minFaceSize;
    }

    @Override
    public boolean equals(Object o) {
        if (!(o instanceof FaceDetectorOptions)) {
            return false;
        }
        FaceDetectorOptions other = (FaceDetectorOptions) o;
        return landmarkMode == other.landmarkMode && contourMode == other.contourMode
                && classificationMode == other.classificationMode && performanceMode == other.performanceMode
                && trackingEnabled == other.trackingEnabled && minFaceSize == other.minFaceSize;
    }

    @Override
    public int hashCode() {
        return Objects.hash(landmarkMode, contourMode, classificationMode, performanceMode, trackingEnabled,
                minFaceSize);
    }

    @Override
    public String toString() {
        return "FaceDetectorOptions{landmarkMode=" + landmarkMode + ", contourMode=" + contourMode
                + ", classificationMode=" + classificationMode + ", performanceMode=" + performanceMode
                + ", trackingEnabled=" + trackingEnabled + ", minFaceSize=" + minFaceSize + "}";
    }

    public static class Builder {
        private int landmarkMode = LANDMARK_MODE_NONE;
        private int contourMode = CONTOUR_MODE_NONE;
        private int classificationMode = CLASSIFICATION_MODE_NONE;
        private int performanceMode = PERFORMANCE_MODE_FAST;
        private boolean trackingEnabled;
        private float minFaceSize = 0.1f;

        public Builder() {}

        public Builder setLandmarkMode(int landmarkMode) {
            this.landmarkMode = landmarkMode;
            return this;
        }

        public Builder setContourMode(int contourMode) {
            this.contourMode = contourMode;
            return this;
        }

        public Builder setClassificationMode(int classificationMode) {
            this.classificationMode = classificationMode;
            return this;
        }

        public Builder setPerformanceMode(int performanceMode) {
            this.performanceMode = performanceMode;
            return this;
        }

        public Builder enableTracking() {
            this.trackingEnabled = true;
            return this;
        }

        public Builder setMinFaceSize(float minFaceSize) {
            this.minFaceSize = minFaceSize;
            return this;
        }

        public Builder setExecutor(Executor executor) { return this; }

        public FaceDetectorOptions build() { return new FaceDetectorOptions(this); }
    }
}
