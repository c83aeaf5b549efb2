package androidx.lifecycle;

/** Signature stub. */
public abstract class Lifecycle {
    public abstract State getCurrentState();

    public enum State {
        DESTROYED, INITIALIZED, CREATED, STARTED, RESUMED
    }
}
