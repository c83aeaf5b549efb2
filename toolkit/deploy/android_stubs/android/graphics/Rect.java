package android.graphics;

/** Faithful: android.graphics.Rect (int edges; right and bottom exclusive), the members the apps use. */
public final class Rect {
    public int left;
    public int top;
    public int right;
    public int bottom;

    public Rect() {}

    public Rect(int left, int top, int right, int bottom) {
        this.left = left;
        this.top = top;
        this.right = right;
        this.bottom = bottom;
    }

    public Rect(Rect r) {
        if (r != null) {
            set(r);
        }
    }

    public int width() { return right - left; }

    public int height() { return bottom - top; }

    public int centerX() { return (left + right) >> 1; }

    public int centerY() { return (top + bottom) >> 1; }

    public float exactCenterX() { return (left + right) * 0.5f; }

    public float exactCenterY() { return (top + bottom) * 0.5f; }

    public boolean isEmpty() { return left >= right || top >= bottom; }

    public void setEmpty() { left = right = top = bottom = 0; }

    public void set(int left, int top, int right, int bottom) {
        this.left = left;
        this.top = top;
        this.right = right;
        this.bottom = bottom;
    }

    public void set(Rect src) { set(src.left, src.top, src.right, src.bottom); }

    public void offset(int dx, int dy) {
        left += dx;
        top += dy;
        right += dx;
        bottom += dy;
    }

    public void offsetTo(int newLeft, int newTop) {
        right += newLeft - left;
        bottom += newTop - top;
        left = newLeft;
        top = newTop;
    }

    public void inset(int dx, int dy) {
        left += dx;
        top += dy;
        right -= dx;
        bottom -= dy;
    }

    public boolean contains(int x, int y) {
        return left < right && top < bottom && x >= left && x < right && y >= top && y < bottom;
    }

    /** Intersects in place when the rectangles overlap (and returns true); otherwise leaves this unchanged. */
    public boolean intersect(int left, int top, int right, int bottom) {
        if (this.left < right && left < this.right && this.top < bottom && top < this.bottom) {
            this.left = Math.max(this.left, left);
            this.top = Math.max(this.top, top);
            this.right = Math.min(this.right, right);
            this.bottom = Math.min(this.bottom, bottom);
            return true;
        }
        return false;
    }

    public boolean intersect(Rect r) { return intersect(r.left, r.top, r.right, r.bottom); }

    public static boolean intersects(Rect a, Rect b) {
        return a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
    }

    @Override
    public boolean equals(Object o) {
        if (this == o) {
            return true;
        }
        if (o == null || getClass() != o.getClass()) {
            return false;
        }
        Rect r = (Rect) o;
        return left == r.left && top == r.top && right == r.right && bottom == r.bottom;
    }

    @Override
    public int hashCode() {
        int result = left;
        result = 31 * result + top;
        result = 31 * result + right;
        result = 31 * result + bottom;
        return result;
    }

    @Override
    public String toString() {
        return "Rect(" + left + ", " + top + " - " + right + ", " + bottom + ")";
    }

    public String toShortString() {
        return "[" + left + "," + top + "][" + right + "," + bottom + "]";
    }
}
