package androidx.camera.core;

/** Signature stub: the base of Preview and ImageAnalysis. */
public abstract class UseCase {
    protected UseCase() {}
}
