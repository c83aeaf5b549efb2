package androidx.activity.result.contract;

import android.content.Context;
import android.content.Intent;

/** Signature stub: the contracts' constructors work (apps build them in field initialisers); the rest throws. */
public final class ActivityResultContracts {
    private ActivityResultContracts() {}

    public static final class RequestPermission extends ActivityResultContract<String, Boolean> {
        public RequestPermission() {}

        @Override
        public Intent createIntent(Context context, String input) { throw new UnsupportedOperationException("stub"); }

        @Override
        public Boolean parseResult(int resultCode, Intent intent) { throw new UnsupportedOperationException("stub"); }
    }

    public static final class StartActivityForResult extends ActivityResultContract<Intent, Object> {
        public StartActivityForResult() {}

        @Override
        public Intent createIntent(Context context, Intent input) { throw new UnsupportedOperationException("stub"); }

        @Override
        public Object parseResult(int resultCode, Intent intent) { throw new UnsupportedOperationException("stub"); }
    }
}
