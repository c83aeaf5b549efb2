package androidx.camera.lifecycle;

import android.content.Context;
import androidx.camera.core.Camera;
import androidx.camera.core.CameraSelector;
import androidx.camera.core.UseCase;
import androidx.lifecycle.LifecycleOwner;
import com.google.common.util.concurrent.ListenableFuture;

/** Signature stub: there is no camera on the JVM. */
public final class ProcessCameraProvider {
    private ProcessCameraProvider() {}

    public static ListenableFuture<ProcessCameraProvider> getInstance(Context context) {
        throw new UnsupportedOperationException("stub");
    }

    public Camera bindToLifecycle(LifecycleOwner lifecycleOwner, CameraSelector cameraSelector,
            UseCase... useCases) {
        throw new UnsupportedOperationException("stub");
    }

    public boolean isBound(UseCase useCase) { throw new UnsupportedOperationException("stub"); }

    public void unbind(UseCase... useCases) { throw new UnsupportedOperationException("stub"); }

    public void unbindAll() { throw new UnsupportedOperationException("stub"); }
}
