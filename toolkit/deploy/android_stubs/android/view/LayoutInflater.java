package android.view;

import android.content.Context;

/** Signature stub: layouts are never inflated on the JVM. */
public abstract class LayoutInflater {
    protected LayoutInflater(Context context) {}

    public static LayoutInflater from(Context context) { throw new UnsupportedOperationException("stub"); }

    public View inflate(int resource, ViewGroup root) { throw new UnsupportedOperationException("stub"); }

    public View inflate(int resource, ViewGroup root, boolean attachToRoot) {
        throw new UnsupportedOperationException("stub");
    }
}
