package androidx.fragment.app;

import androidx.activity.ComponentActivity;

/** Signature stub (a no-op constructor). */
public class FragmentActivity extends ComponentActivity {
    public FragmentActivity() {}
}
