package android.app;

import android.content.Context;
import android.content.DialogInterface;

/** Signature stub. */
public class Dialog implements DialogInterface {
    public Dialog(Context context) { throw new UnsupportedOperationException("stub"); }

    public void show() { throw new UnsupportedOperationException("stub"); }

    public boolean isShowing() { throw new UnsupportedOperationException("stub"); }

    public void setTitle(CharSequence title) { throw new UnsupportedOperationException("stub"); }

    @Override
    public void cancel() { throw new UnsupportedOperationException("stub"); }

    @Override
    public void dismiss() { throw new UnsupportedOperationException("stub"); }
}
