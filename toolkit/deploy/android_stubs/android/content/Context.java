package android.content;

import android.content.pm.PackageManager;

/** Signature stub of the abstract Context; {@link ContextWrapper} implements what the apps call. */
public abstract class Context {
    public static final int MODE_PRIVATE = 0x0000;
    public static final int MODE_APPEND = 0x8000;

    public abstract SharedPreferences getSharedPreferences(String name, int mode);

    public abstract void startActivity(Intent intent);

    public abstract String getPackageName();

    public abstract Context getApplicationContext();

    public abstract PackageManager getPackageManager();

    public abstract int checkSelfPermission(String permission);

    public final String getString(int resId) { throw new UnsupportedOperationException("stub"); }
}
