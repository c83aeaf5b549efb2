package androidx.constraintlayout.widget;

import android.content.Context;
import android.util.AttributeSet;
import android.view.ViewGroup;

/** Signature stub. */
public class ConstraintLayout extends ViewGroup {
    public ConstraintLayout(Context context) { super(context); }

    public ConstraintLayout(Context context, AttributeSet attrs) { super(context, attrs); }

    @Override
    protected void onLayout(boolean changed, int left, int top, int right, int bottom) {
        throw new UnsupportedOperationException("stub");
    }
}
