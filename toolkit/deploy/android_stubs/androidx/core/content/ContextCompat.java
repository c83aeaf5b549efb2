package androidx.core.content;

import android.content.Context;
import java.util.concurrent.Executor;

/** Signature stub. */
public class ContextCompat {
    protected ContextCompat() {}

    public static int checkSelfPermission(Context context, String permission) {
        throw new UnsupportedOperationException("stub");
    }

    public static Executor getMainExecutor(Context context) { throw new UnsupportedOperationException("stub"); }

    public static int getColor(Context context, int id) { throw new UnsupportedOperationException("stub"); }
}
