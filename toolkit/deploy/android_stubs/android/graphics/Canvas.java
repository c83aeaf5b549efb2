package android.graphics;

/** Signature stub: drawing is not reproduced (every draw call throws). */
public class Canvas {
    public Canvas() {}

    public Canvas(Bitmap bitmap) { throw new UnsupportedOperationException("stub"); }

    public int getWidth() { throw new UnsupportedOperationException("stub"); }

    public int getHeight() { throw new UnsupportedOperationException("stub"); }

    public void drawRect(RectF rect, Paint paint) { throw new UnsupportedOperationException("stub"); }

    public void drawRect(Rect r, Paint paint) { throw new UnsupportedOperationException("stub"); }

    public void drawRect(float left, float top, float right, float bottom, Paint paint) {
        throw new UnsupportedOperationException("stub");
    }

    public void drawCircle(float cx, float cy, float radius, Paint paint) {
        throw new UnsupportedOperationException("stub");
    }

    public void drawText(String text, float x, float y, Paint paint) {
        throw new UnsupportedOperationException("stub");
    }

    public void drawBitmap(Bitmap bitmap, float left, float top, Paint paint) {
        throw new UnsupportedOperationException("stub");
    }
}
