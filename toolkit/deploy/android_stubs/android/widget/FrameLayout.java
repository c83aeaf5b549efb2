package android.widget;

import android.content.Context;
import android.util.AttributeSet;
import android.view.ViewGroup;

/** Signature stub. */
public class FrameLayout extends ViewGroup {
    public FrameLayout(Context context) { super(context); }

    public FrameLayout(Context context, AttributeSet attrs) { super(context, attrs); }

    @Override
    protected void onLayout(boolean changed, int l, int t, int r, int b) {
        throw new UnsupportedOperationException("stub");
    }
}
