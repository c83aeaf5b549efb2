package androidx.activity.result;

import androidx.activity.result.contract.ActivityResultContract;

/** Signature stub: launching throws (no activity results on the JVM). */
public abstract class ActivityResultLauncher<I> {
    public void launch(I input) { throw new UnsupportedOperationException("stub"); }

    public abstract void unregister();

    public abstract ActivityResultContract<I, ?> getContract();
}
