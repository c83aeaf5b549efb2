package org.tensorflow.lite;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;

/** Signature stub; Options is a working value holder (apps build it in field initialisers). */
public interface InterpreterApi extends AutoCloseable {
    void run(Object input, Object output);

    void runForMultipleInputsOutputs(Object[] inputs, Map<Integer, Object> outputs);

    void allocateTensors();

    void resizeInput(int idx, int[] dims);

    int getInputTensorCount();

    int getInputIndex(String opName);

    Tensor getInputTensor(int inputIndex);

    int getOutputTensorCount();

    int getOutputIndex(String opName);

    Tensor getOutputTensor(int outputIndex);

    @Override
    void close();

    class Options {
        private int numThreads = -1;
        private boolean useNNAPI;
        private boolean cancellable;
        private final List<Delegate> delegates = new ArrayList<>();

        public Options() {}

        public Options setNumThreads(int numThreads) {
            this.numThreads = numThreads;
            return this;
        }

        /** -1 (the default): the runtime picks. */
        public int getNumThreads() { return numThreads; }

        public Options setUseNNAPI(boolean useNNAPI) {
            this.useNNAPI = useNNAPI;
            return this;
        }

        public boolean getUseNNAPI() { return useNNAPI; }

        public Options setCancellable(boolean allow) {
            this.cancellable = allow;
            return this;
        }

        public boolean isCancellable() { return cancellable; }

        public Options addDelegate(Delegate delegate) {
            delegates.add(delegate);
            return this;
        }

        public List<Delegate> getDelegates() { return Collections.unmodifiableList(delegates); }
    }
}
