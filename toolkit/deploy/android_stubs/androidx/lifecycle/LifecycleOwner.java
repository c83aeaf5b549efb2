package androidx.lifecycle;

/** Signature stub: what CameraX binds use cases to (activities are owners). */
public interface LifecycleOwner {
    Lifecycle getLifecycle();
}
