package com.google.mlkit.vision.face;

import android.graphics.PointF;
import android.graphics.Rect;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Faithful value holder: ML Kit's Face as the detector returns it. Box and landmarks are in the upright image's
 * coordinates. Test constructors (not ML Kit API) build one from a box and {type: position} landmarks; a type that
 * is absent gives getLandmark(type) == null, as when ML Kit did not find it (or landmarks were off). Contours are not
 * stubbed.
 */
public class Face {
    private final Rect boundingBox;
    private final Map<Integer, FaceLandmark> landmarks = new LinkedHashMap<>();
    private final Integer trackingId;
    private final float eulerX;
    private final float eulerY;
    private final float eulerZ;

    /** Test constructor. */
    public Face(Rect boundingBox, Map<Integer, PointF> landmarks) {
        this(boundingBox, landmarks, null, 0f, 0f, 0f);
    }

    /** Test constructor. */
    public Face(Rect boundingBox, Map<Integer, PointF> landmarks, Integer trackingId, float headEulerAngleX,
            float headEulerAngleY, float headEulerAngleZ) {
        this.boundingBox = boundingBox;
        if (landmarks != null) {
            for (Map.Entry<Integer, PointF> entry : landmarks.entrySet()) {
                this.landmarks.put(entry.getKey(), new FaceLandmark(entry.getKey(), entry.getValue()));
            }
        }
        this.trackingId = trackingId;
        this.eulerX = headEulerAngleX;
        this.eulerY = headEulerAngleY;
        this.eulerZ = headEulerAngleZ;
    }

    /** The box itself (a mutable Rect), as ML Kit returns it. */
    public Rect getBoundingBox() { return boundingBox; }

    /** Null unless tracking was enabled (and, here, unless the test gave one). */
    public Integer getTrackingId() { return trackingId; }

    public float getHeadEulerAngleX() { return eulerX; }

    public float getHeadEulerAngleY() { return eulerY; }

    public float getHeadEulerAngleZ() { return eulerZ; }

    /** Null: classification is never on here. */
    public Float getSmilingProbability() { return null; }

    public Float getLeftEyeOpenProbability() { return null; }

    public Float getRightEyeOpenProbability() { return null; }

    /** The landmark of this type, or null when it was not detected. */
    public FaceLandmark getLandmark(int landmarkType) { return landmarks.get(landmarkType); }

    /** In the order the test constructor was given them (ML Kit's own order is not documented). */
    public List<FaceLandmark> getAllLandmarks() {
        return Collections.unmodifiableList(new ArrayList<>(landmarks.values()));
    }
}
