package androidx.camera.core;

/** CameraX 1.3 ImageInfo (the members below; tag bundle, sensor-to-buffer matrix and Exif are not stubbed). */
public interface ImageInfo {
    long getTimestamp();

    /** Degrees (0, 90, 180, 270) to rotate the frame clockwise to be upright on the target display. */
    int getRotationDegrees();
}
