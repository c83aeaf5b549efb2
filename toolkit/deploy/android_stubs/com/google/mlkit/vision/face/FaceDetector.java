package com.google.mlkit.vision.face;

import com.google.android.gms.tasks.Task;
import com.google.mlkit.vision.common.InputImage;
import java.io.Closeable;
import java.util.List;

/** Signature stub. */
public interface FaceDetector extends Closeable {
    Task<List<Face>> process(InputImage image);

    @Override
    void close();
}
