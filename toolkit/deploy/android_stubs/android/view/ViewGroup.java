package android.view;

import android.content.Context;
import android.util.AttributeSet;

/** Signature stub. */
public abstract class ViewGroup extends View {
    public ViewGroup(Context context) { super(context); }

    public ViewGroup(Context context, AttributeSet attrs) { super(context, attrs); }

    public ViewGroup(Context context, AttributeSet attrs, int defStyleAttr) { super(context, attrs, defStyleAttr); }

    public void addView(View child) { throw new UnsupportedOperationException("stub"); }

    public void removeAllViews() { throw new UnsupportedOperationException("stub"); }

    public int getChildCount() { throw new UnsupportedOperationException("stub"); }

    public View getChildAt(int index) { throw new UnsupportedOperationException("stub"); }

    @Override
    protected abstract void onLayout(boolean changed, int l, int t, int r, int b);
}
