package org.tensorflow.lite;

/** Signature stub. */
public interface Delegate extends AutoCloseable {
    long getNativeHandle();

    @Override
    default void close() {}
}
