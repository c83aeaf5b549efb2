package androidx.viewbinding;

import android.view.View;

/** The interface every generated view binding implements. */
public interface ViewBinding {
    View getRoot();
}
