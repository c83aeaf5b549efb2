package android.net;

/** Signature stub. */
public abstract class Uri {
    public static Uri parse(String uriString) { throw new UnsupportedOperationException("stub"); }

    public static Uri fromParts(String scheme, String ssp, String fragment) {
        throw new UnsupportedOperationException("stub");
    }

    public abstract String getScheme();

    public abstract String getPath();
}
