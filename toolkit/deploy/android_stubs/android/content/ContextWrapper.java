package android.content;

import android.content.pm.PackageManager;
import ftk.jvm.MemorySharedPreferences;

/**
 * getSharedPreferences is faithful (an in-memory store per name per process, see MemorySharedPreferences); every
 * other member is a signature stub.
 */
public class ContextWrapper extends Context {
    public ContextWrapper(Context base) {}

    @Override
    public SharedPreferences getSharedPreferences(String name, int mode) {
        return MemorySharedPreferences.forName(name);
    }

    @Override
    public void startActivity(Intent intent) { throw new UnsupportedOperationException("stub"); }

    @Override
    public String getPackageName() { throw new UnsupportedOperationException("stub"); }

    @Override
    public Context getApplicationContext() { throw new UnsupportedOperationException("stub"); }

    @Override
    public PackageManager getPackageManager() { throw new UnsupportedOperationException("stub"); }

    @Override
    public int checkSelfPermission(String permission) { throw new UnsupportedOperationException("stub"); }
}
