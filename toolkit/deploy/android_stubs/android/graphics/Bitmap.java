package android.graphics;

import java.util.Arrays;

/**
 * Faithful for ARGB_8888: an int[]-backed bitmap (0xAARRGGBB per pixel, row-major) with Android's argument checks
 * and mutability rules for the members below. Not faithful: other configs, scaling to another size, premultiplied
 * storage (pixels with alpha below 255 round-trip exactly here), density and colour spaces; see README.md.
 */
public final class Bitmap {
    public enum Config {
        ALPHA_8, RGB_565, ARGB_4444, ARGB_8888, RGBA_F16, HARDWARE, RGBA_1010102
    }

    private final int width;
    private final int height;
    private final int[] pixels;
    private final boolean mutable;
    private boolean recycled;

    private Bitmap(int width, int height, int[] pixels, boolean mutable) {
        this.width = width;
        this.height = height;
        this.pixels = pixels;
        this.mutable = mutable;
    }

    // ---- creation ----------------------------------------------------------------------------------------------

    /** A mutable bitmap, every pixel 0 (transparent black). */
    public static Bitmap createBitmap(int width, int height, Config config) {
        if (width <= 0 || height <= 0) {
            throw new IllegalArgumentException("width and height must be > 0");
        }
        requireArgb8888(config, "createBitmap");
        return new Bitmap(width, height, new int[width * height], true);
    }

    /** An immutable bitmap holding a copy of {@code colors} (row-major, {@code width} per row). */
    public static Bitmap createBitmap(int[] colors, int width, int height, Config config) {
        return createBitmap(colors, 0, width, width, height, config);
    }

    public static Bitmap createBitmap(int[] colors, int offset, int stride, int width, int height, Config config) {
        checkWidthHeight(width, height);
        if (Math.abs(stride) < width) {
            throw new IllegalArgumentException("abs(stride) must be >= width");
        }
        int lastScanline = offset + (height - 1) * stride;
        int length = colors.length;
        if (offset < 0 || (offset + width > length) || lastScanline < 0 || (lastScanline + width > length)) {
            throw new ArrayIndexOutOfBoundsException();
        }
        requireArgb8888(config, "createBitmap");
        int[] copy = new int[width * height];
        for (int row = 0; row < height; row++) {
            System.arraycopy(colors, offset + row * stride, copy, row * width, width);
        }
        return new Bitmap(width, height, copy, false);
    }

    public static Bitmap createBitmap(Bitmap src) {
        return createBitmap(src, 0, 0, src.getWidth(), src.getHeight());
    }

    /**
     * The exact sub-rectangle: {@code source} itself when it is immutable and the rectangle is all of it (as on
     * Android), else a new mutable bitmap (Android draws the region into a new bitmap; a pure translation copies
     * pixels exactly).
     */
    public static Bitmap createBitmap(Bitmap source, int x, int y, int width, int height) {
        checkXYSign(x, y);
        checkWidthHeight(width, height);
        if (x + width > source.getWidth()) {
            throw new IllegalArgumentException("x + width must be <= bitmap.width()");
        }
        if (y + height > source.getHeight()) {
            throw new IllegalArgumentException("y + height must be <= bitmap.height()");
        }
        if (source.isRecycled()) {
            throw new IllegalArgumentException("cannot use a recycled source in createBitmap");
        }
        if (!source.isMutable() && x == 0 && y == 0 && width == source.getWidth() && height == source.getHeight()) {
            return source;
        }
        int[] copy = new int[width * height];
        for (int row = 0; row < height; row++) {
            System.arraycopy(source.pixels, (y + row) * source.width + x, copy, row * width, width);
        }
        return new Bitmap(width, height, copy, true);
    }

    /**
     * Same size: what Android returns (createBitmap(src, 0, 0, w, h): src itself when immutable, else a copy).
     * Another size: throws, because Android's filtered scaling (Skia) is not reproduced here.
     */
    public static Bitmap createScaledBitmap(Bitmap src, int dstWidth, int dstHeight, boolean filter) {
        if (dstWidth != src.getWidth() || dstHeight != src.getHeight()) {
            throw new UnsupportedOperationException("not faithful: Bitmap.createScaledBitmap from " + src.getWidth()
                    + "x" + src.getHeight() + " to " + dstWidth + "x" + dstHeight
                    + " (Android's Skia resampling is not reproduced on the JVM)");
        }
        return createBitmap(src, 0, 0, src.getWidth(), src.getHeight());
    }

    /** A copy in ARGB_8888 (the only config reproduced), mutable or not. */
    public Bitmap copy(Config config, boolean isMutable) {
        checkRecycled("Can't copy a recycled bitmap");
        requireArgb8888(config, "copy");
        return new Bitmap(width, height, pixels.clone(), isMutable);
    }

    // ---- pixels ------------------------------------------------------------------------------------------------

    public int getPixel(int x, int y) {
        checkRecycled("Can't call getPixel() on a recycled bitmap");
        checkPixelAccess(x, y);
        return pixels[y * width + x];
    }

    public void getPixels(int[] pixels, int offset, int stride, int x, int y, int width, int height) {
        checkRecycled("Can't call getPixels() on a recycled bitmap");
        if (width == 0 || height == 0) {
            return;
        }
        checkPixelsAccess(x, y, width, height, offset, stride, pixels);
        for (int row = 0; row < height; row++) {
            System.arraycopy(this.pixels, (y + row) * this.width + x, pixels, offset + row * stride, width);
        }
    }

    public void setPixel(int x, int y, int color) {
        checkRecycled("Can't call setPixel() on a recycled bitmap");
        if (!isMutable()) {
            throw new IllegalStateException();
        }
        checkPixelAccess(x, y);
        pixels[y * width + x] = color;
    }

    public void setPixels(int[] pixels, int offset, int stride, int x, int y, int width, int height) {
        checkRecycled("Can't call setPixels() on a recycled bitmap");
        if (!isMutable()) {
            throw new IllegalStateException();
        }
        if (width == 0 || height == 0) {
            return;
        }
        checkPixelsAccess(x, y, width, height, offset, stride, pixels);
        for (int row = 0; row < height; row++) {
            System.arraycopy(pixels, offset + row * stride, this.pixels, (y + row) * this.width + x, width);
        }
    }

    public void eraseColor(int c) {
        checkRecycled("Can't erase a recycled bitmap");
        if (!isMutable()) {
            throw new IllegalStateException("cannot erase immutable bitmaps");
        }
        Arrays.fill(pixels, c);
    }

    // ---- properties --------------------------------------------------------------------------------------------

    public int getWidth() { return width; }

    public int getHeight() { return height; }

    public Config getConfig() { return Config.ARGB_8888; }

    public boolean isMutable() { return mutable; }

    public boolean hasAlpha() { return true; }

    public int getRowBytes() { return 4 * width; }

    public int getByteCount() { return 4 * width * height; }

    public boolean isRecycled() { return recycled; }

    public void recycle() { recycled = true; }

    public boolean sameAs(Bitmap other) {
        checkRecycled("Can't call sameAs on a recycled bitmap!");
        return this == other || (other != null && width == other.width && height == other.height
                && Arrays.equals(pixels, other.pixels));
    }

    // ---- Android's argument checks -----------------------------------------------------------------------------

    private void checkRecycled(String message) {
        if (recycled) {
            throw new IllegalStateException(message);
        }
    }

    private static void requireArgb8888(Config config, String what) {
        if (config != Config.ARGB_8888) {
            throw new UnsupportedOperationException("not faithful: Bitmap." + what + " with Config." + config
                    + " (only ARGB_8888 is reproduced on the JVM)");
        }
    }

    private static void checkXYSign(int x, int y) {
        if (x < 0) {
            throw new IllegalArgumentException("x must be >= 0");
        }
        if (y < 0) {
            throw new IllegalArgumentException("y must be >= 0");
        }
    }

    private static void checkWidthHeight(int width, int height) {
        if (width <= 0) {
            throw new IllegalArgumentException("width must be > 0");
        }
        if (height <= 0) {
            throw new IllegalArgumentException("height must be > 0");
        }
    }

    private void checkPixelAccess(int x, int y) {
        checkXYSign(x, y);
        if (x >= getWidth()) {
            throw new IllegalArgumentException("x must be < bitmap.width()");
        }
        if (y >= getHeight()) {
            throw new IllegalArgumentException("y must be < bitmap.height()");
        }
    }

    private void checkPixelsAccess(int x, int y, int width, int height, int offset, int stride, int[] pixels) {
        checkXYSign(x, y);
        if (width < 0) {
            throw new IllegalArgumentException("width must be >= 0");
        }
        if (height < 0) {
            throw new IllegalArgumentException("height must be >= 0");
        }
        if (x + width > getWidth()) {
            throw new IllegalArgumentException("x + width must be <= bitmap.width()");
        }
        if (y + height > getHeight()) {
            throw new IllegalArgumentException("y + height must be <= bitmap.height()");
        }
        if (Math.abs(stride) < width) {
            throw new IllegalArgumentException("abs(stride) must be >= width");
        }
        int lastScanline = offset + (height - 1) * stride;
        int length = pixels.length;
        if (offset < 0 || (offset + width > length) || lastScanline < 0 || (lastScanline + width > length)) {
            throw new ArrayIndexOutOfBoundsException();
        }
    }
}
