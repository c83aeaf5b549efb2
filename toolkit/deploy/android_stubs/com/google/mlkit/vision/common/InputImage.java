package com.google.mlkit.vision.common;

import android.graphics.Bitmap;
import android.media.Image;

/** Signature stub: detection does not run on the JVM (tests build Face objects instead). */
public class InputImage {
    public static final int IMAGE_FORMAT_NV21 = 17;
    public static final int IMAGE_FORMAT_YV12 = 842094169;
    public static final int IMAGE_FORMAT_YUV_420_888 = 35;

    private InputImage() {}

    public static InputImage fromMediaImage(Image image, int rotationDegrees) {
        throw new UnsupportedOperationException("stub");
    }

    public static InputImage fromBitmap(Bitmap bitmap, int rotationDegrees) {
        throw new UnsupportedOperationException("stub");
    }

    public int getWidth() { throw new UnsupportedOperationException("stub"); }

    public int getHeight() { throw new UnsupportedOperationException("stub"); }

    public int getRotationDegrees() { throw new UnsupportedOperationException("stub"); }

    public int getFormat() { throw new UnsupportedOperationException("stub"); }
}
