package android.widget;

import android.content.Context;
import android.util.AttributeSet;
import android.view.View;

/** Signature stub. */
public class TextView extends View {
    public TextView(Context context) { super(context); }

    public TextView(Context context, AttributeSet attrs) { super(context, attrs); }

    public CharSequence getText() { throw new UnsupportedOperationException("stub"); }

    public final void setText(CharSequence text) { throw new UnsupportedOperationException("stub"); }

    public final void setText(int resid) { throw new UnsupportedOperationException("stub"); }

    public void setTextColor(int color) { throw new UnsupportedOperationException("stub"); }
}
