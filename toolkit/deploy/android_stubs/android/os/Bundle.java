package android.os;

import java.util.HashMap;
import java.util.Map;
import java.util.Set;

/** Value holder: a map of extras with Android's typed getters (a missing or mistyped key gives the default). */
public final class Bundle {
    private final Map<String, Object> values = new HashMap<>();

    public Bundle() {}

    public Bundle(Bundle b) { values.putAll(b.values); }

    public int size() { return values.size(); }

    public boolean isEmpty() { return values.isEmpty(); }

    public boolean containsKey(String key) { return values.containsKey(key); }

    public Set<String> keySet() { return values.keySet(); }

    public Object get(String key) { return values.get(key); }

    public void remove(String key) { values.remove(key); }

    public void clear() { values.clear(); }

    public void putString(String key, String value) { values.put(key, value); }

    public void putFloatArray(String key, float[] value) { values.put(key, value); }

    public void putInt(String key, int value) { values.put(key, value); }

    public void putLong(String key, long value) { values.put(key, value); }

    public void putFloat(String key, float value) { values.put(key, value); }

    public void putBoolean(String key, boolean value) { values.put(key, value); }

    /** Not Android API: what Intent.putExtra stores through. */
    public void putObject(String key, Object value) { values.put(key, value); }

    public String getString(String key) { return typed(key, String.class, null); }

    public String getString(String key, String defaultValue) {
        String value = getString(key);
        return value == null ? defaultValue : value;
    }

    public float[] getFloatArray(String key) { return typed(key, float[].class, null); }

    public int getInt(String key) { return getInt(key, 0); }

    public int getInt(String key, int defaultValue) { return typed(key, Integer.class, defaultValue); }

    public long getLong(String key, long defaultValue) { return typed(key, Long.class, defaultValue); }

    public float getFloat(String key, float defaultValue) { return typed(key, Float.class, defaultValue); }

    public boolean getBoolean(String key, boolean defaultValue) { return typed(key, Boolean.class, defaultValue); }

    private <T> T typed(String key, Class<T> type, T defaultValue) {
        Object value = values.get(key);
        return type.isInstance(value) ? type.cast(value) : defaultValue;
    }
}
