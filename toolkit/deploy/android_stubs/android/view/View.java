package android.view;

import android.content.Context;
import android.graphics.Canvas;
import android.util.AttributeSet;

/** Signature stub: constructors are no-ops (so tests can build views); every other member throws. */
public class View {
    public static final int VISIBLE = 0x00000000;
    public static final int INVISIBLE = 0x00000004;
    public static final int GONE = 0x00000008;

    public View(Context context) {}

    public View(Context context, AttributeSet attrs) {}

    public View(Context context, AttributeSet attrs, int defStyleAttr) {}

    public Context getContext() { throw new UnsupportedOperationException("stub"); }

    public final int getWidth() { throw new UnsupportedOperationException("stub"); }

    public final int getHeight() { throw new UnsupportedOperationException("stub"); }

    public int getId() { throw new UnsupportedOperationException("stub"); }

    public void setId(int id) { throw new UnsupportedOperationException("stub"); }

    public int getVisibility() { throw new UnsupportedOperationException("stub"); }

    public void setVisibility(int visibility) { throw new UnsupportedOperationException("stub"); }

    public Display getDisplay() { throw new UnsupportedOperationException("stub"); }

    public void invalidate() { throw new UnsupportedOperationException("stub"); }

    public void postInvalidate() { throw new UnsupportedOperationException("stub"); }

    public boolean post(Runnable action) { throw new UnsupportedOperationException("stub"); }

    public void setOnClickListener(OnClickListener l) { throw new UnsupportedOperationException("stub"); }

    public final <T extends View> T findViewById(int id) { throw new UnsupportedOperationException("stub"); }

    protected void onDraw(Canvas canvas) { throw new UnsupportedOperationException("stub"); }

    protected void onLayout(boolean changed, int left, int top, int right, int bottom) {
        throw new UnsupportedOperationException("stub");
    }

    public interface OnClickListener {
        void onClick(View v);
    }
}
