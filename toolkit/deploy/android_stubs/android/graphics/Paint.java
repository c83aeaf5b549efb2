package android.graphics;

/** Value holder: stores colour, style and stroke width (the field initialisers the apps run); draws nothing. */
public class Paint {
    public enum Style {
        FILL, STROKE, FILL_AND_STROKE
    }

    public static final int ANTI_ALIAS_FLAG = 0x01;

    private int color = Color.BLACK;
    private Style style = Style.FILL;
    private float strokeWidth;
    private float textSize = 12f;
    private int flags;

    public Paint() {}

    public Paint(int flags) { this.flags = flags; }

    public int getColor() { return color; }

    public void setColor(int color) { this.color = color; }

    public Style getStyle() { return style; }

    public void setStyle(Style style) { this.style = style; }

    public float getStrokeWidth() { return strokeWidth; }

    public void setStrokeWidth(float width) { this.strokeWidth = width; }

    public float getTextSize() { return textSize; }

    public void setTextSize(float textSize) { this.textSize = textSize; }

    public int getFlags() { return flags; }

    public void setFlags(int flags) { this.flags = flags; }

    public void setAntiAlias(boolean aa) { flags = aa ? (flags | ANTI_ALIAS_FLAG) : (flags & ~ANTI_ALIAS_FLAG); }

    public final boolean isAntiAlias() { return (flags & ANTI_ALIAS_FLAG) != 0; }
}
