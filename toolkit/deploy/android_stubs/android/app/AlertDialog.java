package android.app;

import android.content.Context;
import android.content.DialogInterface;

/** Signature stub of the platform dialog (android.app.AlertDialog). */
public class AlertDialog extends Dialog implements DialogInterface {
    protected AlertDialog(Context context) { super(context); }

    public void setMessage(CharSequence message) { throw new UnsupportedOperationException("stub"); }

    public static class Builder {
        public Builder(Context context) { throw new UnsupportedOperationException("stub"); }

        public Builder setTitle(int titleId) { throw new UnsupportedOperationException("stub"); }

        public Builder setTitle(CharSequence title) { throw new UnsupportedOperationException("stub"); }

        public Builder setMessage(int messageId) { throw new UnsupportedOperationException("stub"); }

        public Builder setMessage(CharSequence message) { throw new UnsupportedOperationException("stub"); }

        public Builder setPositiveButton(int textId, DialogInterface.OnClickListener listener) {
            throw new UnsupportedOperationException("stub");
        }

        public Builder setPositiveButton(CharSequence text, DialogInterface.OnClickListener listener) {
            throw new UnsupportedOperationException("stub");
        }

        public Builder setNegativeButton(int textId, DialogInterface.OnClickListener listener) {
            throw new UnsupportedOperationException("stub");
        }

        public Builder setNegativeButton(CharSequence text, DialogInterface.OnClickListener listener) {
            throw new UnsupportedOperationException("stub");
        }

        public Builder setCancelable(boolean cancelable) { throw new UnsupportedOperationException("stub"); }

        public AlertDialog create() { throw new UnsupportedOperationException("stub"); }

        public AlertDialog show() { throw new UnsupportedOperationException("stub"); }
    }
}
