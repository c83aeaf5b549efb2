package androidx.camera.core;

/** Signature stub. */
public final class SurfaceRequest {
    private SurfaceRequest() {}

    public void willNotProvideSurface() { throw new UnsupportedOperationException("stub"); }
}
