package org.tensorflow.lite.support.common;

/** TFLite support 0.4.3: one step of a processing pipeline. */
public interface Operator<T> {
    T apply(T x);
}
