package androidx.appcompat.app;

import androidx.fragment.app.FragmentActivity;

/** Signature stub (a no-op constructor; see android.app.Activity for what works). */
public class AppCompatActivity extends FragmentActivity {
    public AppCompatActivity() {}
}
