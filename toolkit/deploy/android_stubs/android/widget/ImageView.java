package android.widget;

import android.content.Context;
import android.graphics.Bitmap;
import android.util.AttributeSet;
import android.view.View;

/** Signature stub. */
public class ImageView extends View {
    public ImageView(Context context) { super(context); }

    public ImageView(Context context, AttributeSet attrs) { super(context, attrs); }

    public void setImageBitmap(Bitmap bm) { throw new UnsupportedOperationException("stub"); }
}
