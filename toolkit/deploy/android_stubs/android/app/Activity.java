package android.app;

import android.content.Intent;
import android.os.Bundle;
import android.view.ContextThemeWrapper;
import android.view.LayoutInflater;
import android.view.View;

/**
 * Signature stub. The constructor and the lifecycle callbacks are no-ops (an activity can be instantiated on the
 * JVM and its own code called); getIntent/setIntent hold a value (null until set); the rest throws.
 */
public class Activity extends ContextThemeWrapper {
    private Intent intent;

    public Activity() {}

    protected void onCreate(Bundle savedInstanceState) {}

    protected void onStart() {}

    protected void onResume() {}

    protected void onPause() {}

    protected void onStop() {}

    protected void onDestroy() {}

    public Intent getIntent() { return intent; }

    public void setIntent(Intent newIntent) { this.intent = newIntent; }

    public void setContentView(int layoutResID) { throw new UnsupportedOperationException("stub"); }

    public void setContentView(View view) { throw new UnsupportedOperationException("stub"); }

    public <T extends View> T findViewById(int id) { throw new UnsupportedOperationException("stub"); }

    public LayoutInflater getLayoutInflater() { throw new UnsupportedOperationException("stub"); }

    public void finish() { throw new UnsupportedOperationException("stub"); }

    public boolean isFinishing() { throw new UnsupportedOperationException("stub"); }

    public final void runOnUiThread(Runnable action) { throw new UnsupportedOperationException("stub"); }

    public boolean shouldShowRequestPermissionRationale(String permission) {
        throw new UnsupportedOperationException("stub");
    }

    public final void requestPermissions(String[] permissions, int requestCode) {
        throw new UnsupportedOperationException("stub");
    }
}
