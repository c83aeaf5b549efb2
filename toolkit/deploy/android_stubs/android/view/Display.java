package android.view;

/** Signature stub. */
public final class Display {
    public static final int DEFAULT_DISPLAY = 0;

    private Display() {}

    public int getDisplayId() { throw new UnsupportedOperationException("stub"); }

    /** One of Surface.ROTATION_0 (0), _90 (1), _180 (2), _270 (3). */
    public int getRotation() { throw new UnsupportedOperationException("stub"); }
}
