package android.util;

import java.io.PrintWriter;
import java.io.StringWriter;

/**
 * Faithful enough: Android's logcat calls. Silent unless the system property {@code ftk.log} is set (any value);
 * then each line goes to stderr as {@code P/tag: message}. Returns the number of characters written (0 when silent),
 * where Android returns the bytes written to the log device.
 */
public final class Log {
    public static final int VERBOSE = 2;
    public static final int DEBUG = 3;
    public static final int INFO = 4;
    public static final int WARN = 5;
    public static final int ERROR = 6;
    public static final int ASSERT = 7;

    private Log() {}

    public static int v(String tag, String msg) { return println(VERBOSE, tag, msg); }
    public static int v(String tag, String msg, Throwable tr) { return println(VERBOSE, tag, withTrace(msg, tr)); }
    public static int d(String tag, String msg) { return println(DEBUG, tag, msg); }
    public static int d(String tag, String msg, Throwable tr) { return println(DEBUG, tag, withTrace(msg, tr)); }
    public static int i(String tag, String msg) { return println(INFO, tag, msg); }
    public static int i(String tag, String msg, Throwable tr) { return println(INFO, tag, withTrace(msg, tr)); }
    public static int w(String tag, String msg) { return println(WARN, tag, msg); }
    public static int w(String tag, String msg, Throwable tr) { return println(WARN, tag, withTrace(msg, tr)); }
    public static int w(String tag, Throwable tr) { return println(WARN, tag, getStackTraceString(tr)); }
    public static int e(String tag, String msg) { return println(ERROR, tag, msg); }
    public static int e(String tag, String msg, Throwable tr) { return println(ERROR, tag, withTrace(msg, tr)); }
    public static int wtf(String tag, String msg) { return println(ASSERT, tag, msg); }
    public static int wtf(String tag, Throwable tr) { return println(ASSERT, tag, getStackTraceString(tr)); }
    public static int wtf(String tag, String msg, Throwable tr) { return println(ASSERT, tag, withTrace(msg, tr)); }

    public static boolean isLoggable(String tag, int level) { return level >= INFO; }

    public static String getStackTraceString(Throwable tr) {
        if (tr == null) {
            return "";
        }
        StringWriter out = new StringWriter();
        tr.printStackTrace(new PrintWriter(out, true));
        return out.toString();
    }

    public static int println(int priority, String tag, String msg) {
        if (System.getProperty("ftk.log") == null) {
            return 0;
        }
        String line = "??VDIWEA".charAt(Math.max(VERBOSE, Math.min(priority, ASSERT))) + "/" + tag + ": " + msg;
        System.err.println(line);
        return line.length();
    }

    private static String withTrace(String msg, Throwable tr) {
        return msg + '\n' + getStackTraceString(tr);
    }
}
