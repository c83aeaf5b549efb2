package androidx.camera.core;

/** Value holder: the required lens facing (real constant values); nothing selects a camera on the JVM. */
public final class CameraSelector {
    public static final int LENS_FACING_UNKNOWN = -1;
    public static final int LENS_FACING_FRONT = 0;
    public static final int LENS_FACING_BACK = 1;
    public static final int LENS_FACING_EXTERNAL = 2;

    public static final CameraSelector DEFAULT_FRONT_CAMERA = new CameraSelector(LENS_FACING_FRONT);
    public static final CameraSelector DEFAULT_BACK_CAMERA = new CameraSelector(LENS_FACING_BACK);

    private final Integer lensFacing;

    private CameraSelector(Integer lensFacing) { this.lensFacing = lensFacing; }

    /** The lens facing this selector requires, or null when it requires none. */
    public Integer getLensFacing() { return lensFacing; }

    public static final class Builder {
        private Integer lensFacing;

        public Builder() {}

        public Builder requireLensFacing(int lensFacing) {
            this.lensFacing = lensFacing;
            return this;
        }

        public CameraSelector build() { return new CameraSelector(lensFacing); }
    }
}
