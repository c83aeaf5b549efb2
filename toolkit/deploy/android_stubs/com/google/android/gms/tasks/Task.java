package com.google.android.gms.tasks;

import android.app.Activity;
import java.util.concurrent.Executor;

/** Signature stub of the Play services Task (what FaceDetector.process returns); no task ever runs on the JVM. */
public abstract class Task<TResult> {
    public Task() {}

    public abstract boolean isComplete();

    public abstract boolean isSuccessful();

    public abstract boolean isCanceled();

    public abstract TResult getResult();

    public abstract Exception getException();

    public abstract Task<TResult> addOnSuccessListener(OnSuccessListener<? super TResult> listener);

    public abstract Task<TResult> addOnSuccessListener(Executor executor,
            OnSuccessListener<? super TResult> listener);

    public abstract Task<TResult> addOnSuccessListener(Activity activity,
            OnSuccessListener<? super TResult> listener);

    public abstract Task<TResult> addOnFailureListener(OnFailureListener listener);

    public abstract Task<TResult> addOnFailureListener(Executor executor, OnFailureListener listener);

    public abstract Task<TResult> addOnFailureListener(Activity activity, OnFailureListener listener);

    public Task<TResult> addOnCompleteListener(OnCompleteListener<TResult> listener) {
        throw new UnsupportedOperationException("stub");
    }

    public Task<TResult> addOnCompleteListener(Executor executor, OnCompleteListener<TResult> listener) {
        throw new UnsupportedOperationException("stub");
    }
}
