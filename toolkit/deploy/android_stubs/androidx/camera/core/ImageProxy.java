package androidx.camera.core;

import android.graphics.Bitmap;
import android.graphics.Rect;
import android.media.Image;
import java.nio.ByteBuffer;

/**
 * CameraX 1.3 ImageProxy. toBitmap (added in 1.3) returns the frame as an ARGB_8888 Bitmap in the sensor's
 * orientation (not rotated by getImageInfo().getRotationDegrees()). Here its default body throws: implementations
 * (ftk.jvm.TestImageProxy) carry the pixels; the YUV conversion of a real camera frame is not reproduced.
 */
public interface ImageProxy extends AutoCloseable {
    @Override
    void close();

    Rect getCropRect();

    void setCropRect(Rect rect);

    int getFormat();

    int getHeight();

    int getWidth();

    PlaneProxy[] getPlanes();

    ImageInfo getImageInfo();

    @ExperimentalGetImage
    Image getImage();

    default Bitmap toBitmap() {
        throw new UnsupportedOperationException("stub: YUV/RGBA plane conversion is not reproduced");
    }

    interface PlaneProxy {
        int getRowStride();

        int getPixelStride();

        ByteBuffer getBuffer();
    }
}
