package androidx.activity.result;

/** Signature stub. */
public interface ActivityResultCallback<O> {
    void onActivityResult(O result);
}
