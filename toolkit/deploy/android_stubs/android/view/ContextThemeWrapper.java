package android.view;

import android.content.Context;
import android.content.ContextWrapper;

/** Signature stub (a no-op constructor). */
public class ContextThemeWrapper extends ContextWrapper {
    public ContextThemeWrapper() { super(null); }

    public ContextThemeWrapper(Context base, int themeResId) { super(base); }
}
