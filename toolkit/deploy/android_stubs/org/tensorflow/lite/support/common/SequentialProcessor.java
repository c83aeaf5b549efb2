package org.tensorflow.lite.support.common;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/** Faithful: applies its operators one after the other, in the order they were added. */
public class SequentialProcessor<T> implements Processor<T> {
    protected final List<Operator<T>> operatorList;

    protected SequentialProcessor(List<Operator<T>> operators) {
        this.operatorList = Collections.unmodifiableList(new ArrayList<>(operators));
    }

    @Override
    public T process(T x) {
        for (Operator<T> op : operatorList) {
            x = op.apply(x);
        }
        return x;
    }
}
