package com.google.mlkit.vision.face;

import android.graphics.PointF;

/**
 * Faithful: ML Kit's FaceLandmark (real constant values). 'Left'/'right' are the subject's: LEFT_EYE is the subject's
 * left eye, on the image's right in an unmirrored frame. The public constructor is for tests (ML Kit's is not public).
 */
public class FaceLandmark {
    public static final int MOUTH_BOTTOM = 0;
    public static final int LEFT_CHEEK = 1;
    public static final int LEFT_EAR = 3;
    public static final int LEFT_EYE = 4;
    public static final int MOUTH_LEFT = 5;
    public static final int NOSE_BASE = 6;
    public static final int RIGHT_CHEEK = 7;
    public static final int RIGHT_EAR = 9;
    public static final int RIGHT_EYE = 10;
    public static final int MOUTH_RIGHT = 11;

    private final int type;
    private final PointF position;

    /** Test constructor (not ML Kit API). */
    public FaceLandmark(int type, PointF position) {
        this.type = type;
        this.position = position;
    }

    public int getLandmarkType() { return type; }

    /** In the coordinates of the upright image (the InputImage after its rotation), (0, 0) top left. */
    public PointF getPosition() { return position; }

    @Override
    public String toString() {
        return "FaceLandmark{type=" + type + ", position=" + position + "}";
    }
}
