package androidx.appcompat.app;

import android.app.Dialog;
import android.content.Context;

/** Signature stub. */
public class AppCompatDialog extends Dialog {
    public AppCompatDialog(Context context) { super(context); }
}
