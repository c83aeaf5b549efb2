package org.tensorflow.lite;

import java.io.File;
import java.nio.ByteBuffer;
import java.util.Map;

/**
 * Signature stub: no TensorFlow Lite runtime on the JVM, so the constructors throw (the apps catch it). Options is a
 * working value holder.
 */
public final class Interpreter implements InterpreterApi {
    public Interpreter(File modelFile) { this(modelFile, null); }

    public Interpreter(File modelFile, Options options) { throw new UnsupportedOperationException("stub"); }

    public Interpreter(ByteBuffer byteBuffer) { this(byteBuffer, null); }

    public Interpreter(ByteBuffer byteBuffer, Options options) { throw new UnsupportedOperationException("stub"); }

    @Override
    public void run(Object input, Object output) { throw new UnsupportedOperationException("stub"); }

    @Override
    public void runForMultipleInputsOutputs(Object[] inputs, Map<Integer, Object> outputs) {
        throw new UnsupportedOperationException("stub");
    }

    @Override
    public void allocateTensors() { throw new UnsupportedOperationException("stub"); }

    @Override
    public void resizeInput(int idx, int[] dims) { throw new UnsupportedOperationException("stub"); }

    @Override
    public int getInputTensorCount() { throw new UnsupportedOperationException("stub"); }

    @Override
    public int getInputIndex(String opName) { throw new UnsupportedOperationException("stub"); }

    @Override
    public Tensor getInputTensor(int inputIndex) { throw new UnsupportedOperationException("stub"); }

    @Override
    public int getOutputTensorCount() { throw new UnsupportedOperationException("stub"); }

    @Override
    public int getOutputIndex(String opName) { throw new UnsupportedOperationException("stub"); }

    @Override
    public Tensor getOutputTensor(int outputIndex) { throw new UnsupportedOperationException("stub"); }

    @Override
    public void close() { throw new UnsupportedOperationException("stub"); }

    public static class Options extends InterpreterApi.Options {
        private Boolean useXNNPACK;
        private Boolean allowFp16;

        public Options() {}

        @Override
        public Options setNumThreads(int numThreads) {
            super.setNumThreads(numThreads);
            return this;
        }

        @Override
        public Options setUseNNAPI(boolean useNNAPI) {
            super.setUseNNAPI(useNNAPI);
            return this;
        }

        @Override
        public Options setCancellable(boolean allow) {
            super.setCancellable(allow);
            return this;
        }

        @Override
        public Options addDelegate(Delegate delegate) {
            super.addDelegate(delegate);
            return this;
        }

        public Options setUseXNNPACK(boolean useXNNPACK) {
            this.useXNNPACK = useXNNPACK;
            return this;
        }

        public Options setAllowFp16PrecisionForFp32(boolean allow) {
            this.allowFp16 = allow;
            return this;
        }
    }
}
