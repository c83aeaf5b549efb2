package android.content.pm;

/** Signature stub: the permission results (real values). */
public abstract class PackageManager {
    public static final int PERMISSION_GRANTED = 0;
    public static final int PERMISSION_DENIED = -1;
}
