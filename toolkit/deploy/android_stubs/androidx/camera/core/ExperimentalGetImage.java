package androidx.camera.core;

import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;

/** Signature stub: the opt-in marker of ImageProxy.getImage (Kotlin 1.3 has no opt-in; it is a plain annotation). */
@Retention(RetentionPolicy.CLASS)
public @interface ExperimentalGetImage {
}
