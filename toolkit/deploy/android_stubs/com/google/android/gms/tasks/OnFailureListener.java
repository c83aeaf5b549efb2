package com.google.android.gms.tasks;

/** Signature stub. */
public interface OnFailureListener {
    void onFailure(Exception e);
}
