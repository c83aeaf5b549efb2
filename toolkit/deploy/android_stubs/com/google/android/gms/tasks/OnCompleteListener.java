package com.google.android.gms.tasks;

/** Signature stub. */
public interface OnCompleteListener<TResult> {
    void onComplete(Task<TResult> task);
}
