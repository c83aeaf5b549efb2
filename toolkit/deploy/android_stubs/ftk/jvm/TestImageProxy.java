package ftk.jvm;

import android.graphics.Bitmap;
import android.graphics.Rect;
import android.media.Image;
import androidx.camera.core.ImageInfo;
import androidx.camera.core.ImageProxy;

/**
 * Test class (not CameraX API): a camera frame that is an ARGB_8888 Bitmap in the sensor's orientation plus the
 * rotation CameraX reports for it. toBitmap() returns that bitmap (CameraX 1.3 returns the frame unrotated, too);
 * width and height are the sensor's. After close(), the frame's accessors throw IllegalStateException, as a closed
 * camera image's do.
 */
public final class TestImageProxy implements ImageProxy {
    /** android.graphics.PixelFormat.RGBA_8888: what an ImageAnalysis with OUTPUT_IMAGE_FORMAT_RGBA_8888 delivers. */
    public static final int FORMAT_RGBA_8888 = 1;

    private final Bitmap sensorBitmap;
    private final ImageInfo imageInfo;
    private Rect cropRect;
    private boolean closed;

    public TestImageProxy(Bitmap sensorBitmap, final int rotationDegrees) {
        if (rotationDegrees % 90 != 0 || rotationDegrees < 0 || rotationDegrees >= 360) {
            throw new IllegalArgumentException("rotationDegrees must be 0, 90, 180 or 270, got " + rotationDegrees);
        }
        this.sensorBitmap = sensorBitmap;
        this.cropRect = new Rect(0, 0, sensorBitmap.getWidth(), sensorBitmap.getHeight());
        this.imageInfo = new ImageInfo() {
            @Override
            public long getTimestamp() { return 0L; }

            @Override
            public int getRotationDegrees() { return rotationDegrees; }
        };
    }

    /** Test helper: whether the code under test closed the frame. */
    public boolean isClosed() { return closed; }

    @Override
    public void close() { closed = true; }

    @Override
    public Rect getCropRect() {
        requireOpen();
        return new Rect(cropRect);
    }

    @Override
    public void setCropRect(Rect rect) {
        requireOpen();
        cropRect = rect == null ? new Rect(0, 0, getWidth(), getHeight()) : new Rect(rect);
    }

    @Override
    public int getFormat() {
        requireOpen();
        return FORMAT_RGBA_8888;
    }

    @Override
    public int getHeight() {
        requireOpen();
        return sensorBitmap.getHeight();
    }

    @Override
    public int getWidth() {
        requireOpen();
        return sensorBitmap.getWidth();
    }

    @Override
    public PlaneProxy[] getPlanes() { throw new UnsupportedOperationException("stub"); }

    @Override
    public ImageInfo getImageInfo() { return imageInfo; }

    /** Null: this frame is not backed by an android.media.Image. */
    @Override
    public Image getImage() { return null; }

    @Override
    public Bitmap toBitmap() {
        requireOpen();
        return sensorBitmap;
    }

    private void requireOpen() {
        if (closed) {
            throw new IllegalStateException("Image is already closed");
        }
    }
}
