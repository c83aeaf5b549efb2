package org.tensorflow.lite.support.common;

/** TFLite support 0.4.3. */
public interface Processor<T> {
    T process(T input);
}
