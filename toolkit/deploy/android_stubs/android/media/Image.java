package android.media;

import android.graphics.Rect;
import java.nio.ByteBuffer;

/** Signature stub of a camera frame (android.media.Image); CameraX's ImageProxy.getImage returns one. */
public abstract class Image implements AutoCloseable {
    protected Image() {}

    public abstract int getFormat();

    public abstract int getWidth();

    public abstract int getHeight();

    public abstract long getTimestamp();

    public abstract Plane[] getPlanes();

    public Rect getCropRect() { throw new UnsupportedOperationException("stub"); }

    public void setCropRect(Rect cropRect) { throw new UnsupportedOperationException("stub"); }

    @Override
    public abstract void close();

    public abstract static class Plane {
        protected Plane() {}

        public abstract int getRowStride();

        public abstract int getPixelStride();

        public abstract ByteBuffer getBuffer();
    }
}
