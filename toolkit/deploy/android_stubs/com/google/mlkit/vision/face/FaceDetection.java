package com.google.mlkit.vision.face;

/** Signature stub: no detector runs on the JVM. */
public class FaceDetection {
    private FaceDetection() {}

    public static FaceDetector getClient() { throw new UnsupportedOperationException("stub"); }

    public static FaceDetector getClient(FaceDetectorOptions options) {
        throw new UnsupportedOperationException("stub");
    }
}
