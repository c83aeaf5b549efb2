package android.util;

/** Signature stub: the XML attributes a view is inflated with. */
public interface AttributeSet {
    int getAttributeCount();

    String getAttributeName(int index);

    String getAttributeValue(int index);
}
