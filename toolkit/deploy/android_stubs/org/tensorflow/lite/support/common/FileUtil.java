package org.tensorflow.lite.support.common;

import android.content.Context;
import java.io.IOException;
import java.nio.MappedByteBuffer;
import java.util.List;

/** Signature stub: there are no app assets on the JVM. */
public class FileUtil {
    private FileUtil() {}

    public static MappedByteBuffer loadMappedFile(Context context, String filePath) throws IOException {
        throw new UnsupportedOperationException("stub");
    }

    public static List<String> loadLabels(Context context, String filePath) throws IOException {
        throw new UnsupportedOperationException("stub");
    }
}
