package android.widget;

import android.content.Context;
import android.util.AttributeSet;
import android.view.ViewGroup;

/** Signature stub. */
public class LinearLayout extends ViewGroup {
    public static final int HORIZONTAL = 0;
    public static final int VERTICAL = 1;

    public LinearLayout(Context context) { super(context); }

    public LinearLayout(Context context, AttributeSet attrs) { super(context, attrs); }

    public void setOrientation(int orientation) { throw new UnsupportedOperationException("stub"); }

    @Override
    protected void onLayout(boolean changed, int l, int t, int r, int b) {
        throw new UnsupportedOperationException("stub");
    }
}
