package androidx.camera.core;

/** Signature stub. */
public final class Preview extends UseCase {
    private Preview() {}

    public void setSurfaceProvider(SurfaceProvider surfaceProvider) {
        throw new UnsupportedOperationException("stub");
    }

    public int getTargetRotation() { throw new UnsupportedOperationException("stub"); }

    public interface SurfaceProvider {
        void onSurfaceRequested(SurfaceRequest request);
    }

    public static final class Builder {
        public Builder() { throw new UnsupportedOperationException("stub"); }

        public Builder setTargetRotation(int rotation) { throw new UnsupportedOperationException("stub"); }

        public Preview build() { throw new UnsupportedOperationException("stub"); }
    }
}
