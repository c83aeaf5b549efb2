package androidx.camera.view;

import android.content.Context;
import android.graphics.Bitmap;
import android.util.AttributeSet;
import android.widget.FrameLayout;
import androidx.camera.core.Preview;

/** Signature stub. */
public final class PreviewView extends FrameLayout {
    public PreviewView(Context context) { super(context); }

    public PreviewView(Context context, AttributeSet attrs) { super(context, attrs); }

    public Preview.SurfaceProvider getSurfaceProvider() { throw new UnsupportedOperationException("stub"); }

    public Bitmap getBitmap() { throw new UnsupportedOperationException("stub"); }
}
