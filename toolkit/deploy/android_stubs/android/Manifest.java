package android;

/** Signature stub: the permission names the apps use (real values). */
public final class Manifest {
    private Manifest() {}

    public static final class permission {
        private permission() {}

        public static final String CAMERA = "android.permission.CAMERA";
        public static final String INTERNET = "android.permission.INTERNET";
    }
}
