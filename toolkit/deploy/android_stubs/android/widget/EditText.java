package android.widget;

import android.content.Context;
import android.text.Editable;
import android.util.AttributeSet;

/** Signature stub. */
public class EditText extends TextView {
    public EditText(Context context) { super(context); }

    public EditText(Context context, AttributeSet attrs) { super(context, attrs); }

    @Override
    public Editable getText() { throw new UnsupportedOperationException("stub"); }
}
