package android.text;

/** Signature stub: HTML is not rendered. */
public class Html {
    public static final int FROM_HTML_MODE_LEGACY = 0x00000000;
    public static final int FROM_HTML_MODE_COMPACT = 0x0000003f;

    private Html() {}

    /** @deprecated as on Android: use {@link #fromHtml(String, int)}. */
    @Deprecated
    public static Spanned fromHtml(String source) { throw new UnsupportedOperationException("stub"); }

    public static Spanned fromHtml(String source, int flags) { throw new UnsupportedOperationException("stub"); }
}
