package org.json;

/** Signature stub: the constructor works, everything else throws (toString included). */
public class JSONObject {
    public JSONObject() {}

    public JSONObject(String json) throws JSONException { throw new UnsupportedOperationException("stub"); }

    public JSONObject put(String name, Object value) throws JSONException {
        throw new UnsupportedOperationException("stub");
    }

    public JSONObject put(String name, int value) throws JSONException {
        throw new UnsupportedOperationException("stub");
    }

    public String getString(String name) throws JSONException { throw new UnsupportedOperationException("stub"); }

    public String optString(String name) { throw new UnsupportedOperationException("stub"); }

    @Override
    public String toString() { throw new UnsupportedOperationException("stub"); }
}
