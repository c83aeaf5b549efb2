package ftk.jvm;

import android.content.SharedPreferences;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Test class (not Android API): what Context.getSharedPreferences(name, mode) returns on the JVM. One store per name
 * per process, in memory only (nothing reaches disk; the mode is ignored). Semantics as Android's: an Editor buffers
 * its changes until commit()/apply(), which apply clear() first, then the puts and removes; putting null removes the
 * key; getAll() returns a copy; a getter on a value of another type throws ClassCastException.
 */
public final class MemorySharedPreferences implements SharedPreferences {
    private static final Map<String, MemorySharedPreferences> STORES = new ConcurrentHashMap<>();

    private final Map<String, Object> values = new HashMap<>();

    private MemorySharedPreferences() {}

    public static MemorySharedPreferences forName(String name) {
        return STORES.computeIfAbsent(String.valueOf(name), n -> new MemorySharedPreferences());
    }

    /** Test helper: forget every store (a fresh "install"). */
    public static void resetAll() { STORES.clear(); }

    @Override
    public synchronized Map<String, ?> getAll() { return new HashMap<>(values); }

    @Override
    public synchronized String getString(String key, String defValue) {
        String value = (String) values.get(key);
        return value != null ? value : defValue;
    }

    @SuppressWarnings("unchecked")
    @Override
    public synchronized Set<String> getStringSet(String key, Set<String> defValues) {
        Set<String> value = (Set<String>) values.get(key);
        return value != null ? value : defValues;
    }

    @Override
    public synchronized int getInt(String key, int defValue) {
        Integer value = (Integer) values.get(key);
        return value != null ? value : defValue;
    }

    @Override
    public synchronized long getLong(String key, long defValue) {
        Long value = (Long) values.get(key);
        return value != null ? value : defValue;
    }

    @Override
    public synchronized float getFloat(String key, float defValue) {
        Float value = (Float) values.get(key);
        return value != null ? value : defValue;
    }

    @Override
    public synchronized boolean getBoolean(String key, boolean defValue) {
        Boolean value = (Boolean) values.get(key);
        return value != null ? value : defValue;
    }

    @Override
    public synchronized boolean contains(String key) { return values.containsKey(key); }

    @Override
    public Editor edit() { return new MemoryEditor(); }

    private synchronized void commitEdit(boolean clear, Map<String, Object> changes) {
        if (clear) {
            values.clear();
        }
        for (Map.Entry<String, Object> change : changes.entrySet()) {
            if (change.getValue() == REMOVED) {
                values.remove(change.getKey());
            } else {
                values.put(change.getKey(), change.getValue());
            }
        }
    }

    private static final Object REMOVED = new Object();

    private final class MemoryEditor implements Editor {
        private final Map<String, Object> changes = new HashMap<>();
        private boolean clear;

        private synchronized Editor put(String key, Object value) {
            changes.put(key, value == null ? REMOVED : value);
            return this;
        }

        @Override
        public Editor putString(String key, String value) { return put(key, value); }

        @Override
        public Editor putStringSet(String key, Set<String> values) {
            return put(key, values == null ? null : new HashSet<>(values));
        }

        @Override
        public Editor putInt(String key, int value) { return put(key, value); }

        @Override
        public Editor putLong(String key, long value) { return put(key, value); }

        @Override
        public Editor putFloat(String key, float value) { return put(key, value); }

        @Override
        public Editor putBoolean(String key, boolean value) { return put(key, value); }

        @Override
        public Editor remove(String key) { return put(key, null); }

        @Override
        public synchronized Editor clear() {
            clear = true;
            return this;
        }

        @Override
        public synchronized boolean commit() {
            commitEdit(clear, changes);
            changes.clear();
            clear = false;
            return true;
        }

        @Override
        public void apply() { commit(); }
    }
}
