package dev.lora4j.lora;

import java.util.List;

/**
 * The {@link AdapterBank} of one {@link LoraLinear}, built on first use and rebuilt when its
 * adapters change: added or deleted (which invalidates it) or trained, which the factors'
 * version counters and the scales tell. Getting it is synchronized; a rebuild closes the
 * old bank, which is safe because forwards hold the layer's read lock and the changes that
 * make a rebuild necessary hold its write lock ({@link AdapterLock}); a bank closed under a
 * caller anyway refuses with an exception (its own lock), never a crash.
 */
final class BankCache {

    private final LoraLinear layer;
    private AdapterBank bank;
    private long[] stamp;

    BankCache(LoraLinear layer) {
        this.layer = layer;
    }

    synchronized AdapterBank get() {
        long[] now = stamp();
        if (bank == null || !java.util.Arrays.equals(now, stamp)) {
            invalidate();
            AdapterBank b = new AdapterBank(layer.inFeatures(), layer.outFeatures());
            try {
                b.putAll(layer);
            } catch (RuntimeException e) {
                b.close();
                throw e;
            }
            bank = b;
            stamp = now;
        }
        return bank;
    }

    /** Factor identities, versions and scales of every adapter, in order. */
    private long[] stamp() {
        List<String> names = layer.adapterNames();
        long[] s = new long[5 * names.size()];
        int k = 0;
        for (String n : names) {
            var a = layer.loraA(n);
            var b = layer.loraB(n);
            s[k++] = System.identityHashCode(a);
            s[k++] = a.version();
            s[k++] = System.identityHashCode(b);
            s[k++] = b.version();
            s[k++] = Double.doubleToLongBits(layer.scaling(n));
        }
        return s;
    }

    synchronized void invalidate() {
        if (bank != null) bank.close();
        bank = null;
        stamp = null;
    }
}
