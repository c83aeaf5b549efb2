package org.json;

/** Signature stub (checked, as on Android). */
public class JSONException extends Exception {
    public JSONException(String message) { super(message); }
}
