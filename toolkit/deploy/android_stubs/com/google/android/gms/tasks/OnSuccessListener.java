package com.google.android.gms.tasks;

/** Signature stub. */
public interface OnSuccessListener<TResult> {
    void onSuccess(TResult result);
}
