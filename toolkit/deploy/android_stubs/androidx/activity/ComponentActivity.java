package androidx.activity;

import android.app.Activity;
import androidx.activity.result.ActivityResultCallback;
import androidx.activity.result.ActivityResultCaller;
import androidx.activity.result.ActivityResultLauncher;
import androidx.activity.result.contract.ActivityResultContract;
import androidx.lifecycle.Lifecycle;
import androidx.lifecycle.LifecycleOwner;

/**
 * Signature stub (androidx.core.app.ComponentActivity is folded in). registerForActivityResult works as on Android
 * at construction time (apps call it in field initialisers): it returns a launcher whose launch() throws.
 */
public class ComponentActivity extends Activity implements LifecycleOwner, ActivityResultCaller {
    public ComponentActivity() {}

    @Override
    public Lifecycle getLifecycle() { throw new UnsupportedOperationException("stub"); }

    @Override
    public final <I, O> ActivityResultLauncher<I> registerForActivityResult(
            final ActivityResultContract<I, O> contract, ActivityResultCallback<O> callback) {
        return new ActivityResultLauncher<I>() {
            @Override
            public void unregister() {}

            @Override
            public ActivityResultContract<I, ?> getContract() { return contract; }
        };
    }
}
