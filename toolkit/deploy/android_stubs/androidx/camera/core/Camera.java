package androidx.camera.core;

/** Signature stub: what ProcessCameraProvider.bindToLifecycle returns (its controls are not stubbed). */
public interface Camera {
}
