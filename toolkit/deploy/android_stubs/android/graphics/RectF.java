package android.graphics;

/** Faithful: android.graphics.RectF (float edges), the members the apps use. */
public class RectF {
    public float left;
    public float top;
    public float right;
    public float bottom;

    public RectF() {}

    public RectF(float left, float top, float right, float bottom) {
        this.left = left;
        this.top = top;
        this.right = right;
        this.bottom = bottom;
    }

    public RectF(RectF r) {
        if (r != null) {
            set(r.left, r.top, r.right, r.bottom);
        }
    }

    public RectF(Rect r) {
        if (r != null) {
            set(r.left, r.top, r.right, r.bottom);
        }
    }

    public final float width() { return right - left; }

    public final float height() { return bottom - top; }

    public final float centerX() { return (left + right) * 0.5f; }

    public final float centerY() { return (top + bottom) * 0.5f; }

    public final boolean isEmpty() { return left >= right || top >= bottom; }

    public void set(float left, float top, float right, float bottom) {
        this.left = left;
        this.top = top;
        this.right = right;
        this.bottom = bottom;
    }

    public void set(RectF src) { set(src.left, src.top, src.right, src.bottom); }

    public void set(Rect src) { set(src.left, src.top, src.right, src.bottom); }

    public void offset(float dx, float dy) {
        left += dx;
        top += dy;
        right += dx;
        bottom += dy;
    }

    public boolean contains(float x, float y) {
        return left < right && top < bottom && x >= left && x < right && y >= top && y < bottom;
    }

    @Override
    public boolean equals(Object o) {
        if (this == o) {
            return true;
        }
        if (o == null || getClass() != o.getClass()) {
            return false;
        }
        RectF r = (RectF) o;
        return left == r.left && top == r.top && right == r.right && bottom == r.bottom;
    }

    @Override
    public int hashCode() {
        int result = Float.floatToIntBits(left);
        result = 31 * result + Float.floatToIntBits(top);
        result = 31 * result + Float.floatToIntBits(right);
        result = 31 * result + Float.floatToIntBits(bottom);
        return result;
    }

    @Override
    public String toString() {
        return "RectF(" + left + ", " + top + ", " + right + ", " + bottom + ")";
    }
}
