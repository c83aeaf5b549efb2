package com.google.gson;

import java.lang.reflect.Type;

/** Signature stub: the constructor works, (de)serialisation throws. */
public final class Gson {
    public Gson() {}

    public String toJson(Object src) { throw new UnsupportedOperationException("stub"); }

    public String toJson(Object src, Type typeOfSrc) { throw new UnsupportedOperationException("stub"); }

    public <T> T fromJson(String json, Class<T> classOfT) { throw new UnsupportedOperationException("stub"); }

    public <T> T fromJson(String json, Type typeOfT) { throw new UnsupportedOperationException("stub"); }
}
