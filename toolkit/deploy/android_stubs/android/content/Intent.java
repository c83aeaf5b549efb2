package android.content;

import android.net.Uri;
import android.os.Bundle;

/**
 * Value holder: action, data, target class and extras are stored and read back as on Android; nothing is ever
 * delivered (Context.startActivity is a stub). Intent(Context, Class) does not ask the context for its package.
 */
public class Intent {
    private String action;
    private Uri data;
    private Class<?> targetClass;
    private Bundle extras;

    public Intent() {}

    public Intent(String action) { this.action = action; }

    public Intent(String action, Uri uri) {
        this.action = action;
        this.data = uri;
    }

    public Intent(Context packageContext, Class<?> cls) { this.targetClass = cls; }

    public String getAction() { return action; }

    public Intent setAction(String action) {
        this.action = action;
        return this;
    }

    public Uri getData() { return data; }

    public Intent setData(Uri data) {
        this.data = data;
        return this;
    }

    /** Test helper (not Android API): the class given to Intent(Context, Class). */
    public Class<?> getTargetClass() { return targetClass; }

    public Bundle getExtras() { return extras == null ? null : new Bundle(extras); }

    public boolean hasExtra(String name) { return extras != null && extras.containsKey(name); }

    public Intent putExtra(String name, String value) { return put(name, value); }

    public Intent putExtra(String name, float[] value) { return put(name, value); }

    public Intent putExtra(String name, int value) { return put(name, value); }

    public Intent putExtra(String name, long value) { return put(name, value); }

    public Intent putExtra(String name, float value) { return put(name, value); }

    public Intent putExtra(String name, boolean value) { return put(name, value); }

    public String getStringExtra(String name) { return extras == null ? null : extras.getString(name); }

    public float[] getFloatArrayExtra(String name) { return extras == null ? null : extras.getFloatArray(name); }

    public int getIntExtra(String name, int defaultValue) {
        return extras == null ? defaultValue : extras.getInt(name, defaultValue);
    }

    public boolean getBooleanExtra(String name, boolean defaultValue) {
        return extras == null ? defaultValue : extras.getBoolean(name, defaultValue);
    }

    private Intent put(String name, Object value) {
        if (extras == null) {
            extras = new Bundle();
        }
        extras.putObject(name, value);
        return this;
    }
}
