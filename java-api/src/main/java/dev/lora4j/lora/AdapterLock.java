package dev.lora4j.lora;

import dev.lora4j.nn.Module;
import java.util.Map;
import java.util.Objects;
import java.util.WeakHashMap;
import java.util.concurrent.locks.Lock;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * The read-write discipline that makes adapter changes safe while forwards run: one lock per
 * model, shared by every {@link LoraLayer} of that model.
 *
 * <h2>The rule</h2>
 * <ul>
 *   <li><b>Readers</b> hold the read lock: {@link Lora#forward(Module, dev.lora4j.Tensor)},
 *       {@link Lora#forward(Module, dev.lora4j.Tensor, String...)} and
 *       {@link dev.lora4j.dylora.DyLora#forward(Module, dev.lora4j.Tensor, int)} for the whole forward of the
 *       model (so a forward sees one adapter state in every layer), and each
 *       {@link LoraLayer#forward} for its own layer (so a plain {@code model.forward(x)} never
 *       meets a half-made change in a layer, though two of its layers may see the states before
 *       and after a change that runs between them: call {@link Lora#forward(Module, dev.lora4j.Tensor)}
 *       when that matters). The model-level queries ({@link Lora#adapterNames},
 *       {@link Lora#activeAdapters}, ...) read under it too.</li>
 *   <li><b>Changes</b> hold the write lock, which waits until no forward of the model runs and
 *       keeps new ones waiting until the change is complete: every public operation of
 *       {@link Lora} that changes adapters (wrap, add, delete, set, merge, unmerge, weighted
 *       add, merge-and-unload, enable/disable), {@link dev.lora4j.io.PeftAdapter#load},
 *       {@link dev.lora4j.dylora.DyLora#setRank}, and the layer-level ones of
 *       {@link LoraLayer} and the DyLoRA layers.</li>
 *   <li>Several changes become one with {@link #changing}: forwards see the state before all
 *       of them or after all of them; {@link #reading} keeps the adapters as they are for a
 *       block of reads. Both locks are reentrant; changing
 *       adapters while the same thread holds only the read lock (inside a forward) is an
 *       {@link IllegalStateException}, not a deadlock.</li>
 * </ul>
 *
 * <p>Which lock a layer uses: a new layer has a private lock of its own. The first model-level
 * operation (forwards included) on a model that holds the layer makes it the model's for
 * good: from then on it uses the model's lock. The lock of a model is the lock its LoRA layers
 * belong to (so an operation on a sub-module of a model uses the whole model's lock), or one
 * of its own while none belongs anywhere. When its layers belong to several (an encoder and a
 * decoder wrapped separately, say), an operation on the whole holds all of their locks, taken
 * in one global order so that two such operations cannot deadlock.
 *
 * <p>Training is outside this rule: an optimizer step changes factors in place without the
 * lock, so training stays single-threaded per model, with no concurrent forwards (as
 * {@link Module} says). Closing a model while forwards run is the lifetime rules' business,
 * not this lock's.
 *
 * <p>Thread-safe. Holds no native resource; a model's lock lives as long as the model is
 * reachable.
 */
public final class AdapterLock {

    /** The locks of models whose LoRA layers belong nowhere yet (weak keys; Module keeps Object's equals). */
    private static final Map<Module, AdapterLock> MODELS = new WeakHashMap<>();

    private static final java.util.concurrent.atomic.AtomicLong IDS = new java.util.concurrent.atomic.AtomicLong();

    private final ReentrantReadWriteLock rw = new ReentrantReadWriteLock();
    /** The global order in which several locks are taken. */
    private final long id = IDS.incrementAndGet();
    /** Whether this is a model's lock (else a new layer's private one, which a model takes over). */
    private final boolean model;

    private AdapterLock(boolean model) {
        this.model = model;
    }

    /** The private lock of a new layer. */
    static AdapterLock forLayer() {
        return new AdapterLock(false);
    }

    /** A section that may throw a checked exception. */
    @FunctionalInterface
    public interface Body<T, E extends Exception> {
        T run() throws E;
    }

    /**
     * Runs {@code body} holding the write lock of {@code model}'s adapters: no forward of the
     * model runs meanwhile, and forwards see the state before the whole body or after it (several
     * changes made one). Returns what the body returns.
     *
     * @throws IllegalStateException when this thread is inside a forward (holds the read lock only)
     */
    public static <T, E extends Exception> T changing(Module model, Body<T, E> body) throws E {
        Objects.requireNonNull(body, "body");
        return holding(lockModel(model, true), body);
    }

    /** Runs {@code body} holding the read lock of {@code model}'s adapters: they do not change meanwhile. */
    public static <T, E extends Exception> T reading(Module model, Body<T, E> body) throws E {
        Objects.requireNonNull(body, "body");
        return holding(lockModel(model, false), body);
    }

    /** Runs {@code body}, then releases {@code h}. */
    static <T, E extends Exception> T holding(Held h, Body<T, E> body) throws E {
        try {
            return body.run();
        } finally {
            h.close();
        }
    }

    /** A held lock; closing releases it once. */
    interface Held extends AutoCloseable {
        @Override
        void close();
    }

    private Held lock(boolean write) {
        if (write && !rw.isWriteLockedByCurrentThread() && rw.getReadHoldCount() > 0) {
            throw new IllegalStateException("adapters cannot change while this thread runs a forward (or a read) of the same model");
        }
        return hold(write ? rw.writeLock() : rw.readLock());
    }

    private static Held hold(Lock l) {
        l.lock();
        return new Held() {
            private boolean open = true;

            @Override
            public void close() {
                if (open) {
                    open = false;
                    l.unlock();
                }
            }
        };
    }

    /** Locks the lock {@code layer} uses, retrying when a model takes the layer over meanwhile. */
    static Held lock(LoraLayer layer, boolean write) {
        for (;;) {
            AdapterLock g = layer.adapterLock;
            Held h = g.lock(write);
            if (g == layer.adapterLock) return h;
            h.close();
        }
    }

    /**
     * Locks {@code model}'s locks and makes every LoRA layer of it that belongs to no model the
     * model's. A write hold does that again when closed, so layers the change created belong to
     * the model from then on.
     */
    static Held lockModel(Module model, boolean write) {
        Objects.requireNonNull(model, "model");
        for (;;) {
            java.util.List<AdapterLock> locks = locksOf(model, layers(model));
            Held h = lockAll(locks, write);
            try {
                // A sub-module's operation may have given layers to a model meanwhile: check under the lock.
                java.util.List<LoraLayer> now = layers(model);
                if (!locksOf(model, now).equals(locks)) {
                    h.close();
                    continue;
                }
                locks.get(0).takeOver(now);
            } catch (RuntimeException | Error e) {
                h.close();
                throw e;
            }
            if (!write) return h;
            return () -> {
                try {
                    locks.get(0).takeOver(layers(model));
                } finally {
                    h.close();
                }
            };
        }
    }

    /** Locks every one of {@code locks} (in their global order); closing releases them in reverse. */
    private static Held lockAll(java.util.List<AdapterLock> locks, boolean write) {
        if (locks.size() == 1) return locks.get(0).lock(write);
        java.util.List<Held> held = new java.util.ArrayList<>();
        Held all = () -> {
            for (int i = held.size() - 1; i >= 0; i--) held.get(i).close();
        };
        try {
            for (AdapterLock g : locks) held.add(g.lock(write));
        } catch (RuntimeException | Error e) {
            all.close();
            throw e;
        }
        return all;
    }

    /**
     * The model locks the LoRA layers of {@code model} belong to, in their global order, or the
     * model's own while none belongs anywhere.
     */
    private static java.util.List<AdapterLock> locksOf(Module model, java.util.List<LoraLayer> layers) {
        AdapterLock single = null;
        java.util.TreeMap<Long, AdapterLock> owners = null;
        for (LoraLayer l : layers) {
            AdapterLock g = l.adapterLock;
            if (!g.model || g == single) continue;
            if (single == null) {
                single = g;
            } else {
                if (owners == null) {
                    owners = new java.util.TreeMap<>();
                    owners.put(single.id, single);
                }
                owners.put(g.id, g);
            }
        }
        if (owners != null) return java.util.List.copyOf(owners.values());
        if (single != null) return java.util.List.of(single);
        synchronized (MODELS) {
            return java.util.List.of(MODELS.computeIfAbsent(model, m -> new AdapterLock(true)));
        }
    }

    /** The LoRA layers of {@code model}; read without a lock, so retried when a change runs meanwhile. */
    private static java.util.List<LoraLayer> layers(Module model) {
        for (int attempt = 0; ; attempt++) {
            try {
                java.util.List<LoraLayer> out = new java.util.ArrayList<>();
                for (Module m : model.namedModules().values()) if (m instanceof LoraLayer l) out.add(l);
                return out;
            } catch (java.util.ConcurrentModificationException e) {
                if (attempt > 1000) throw e;
                Thread.onSpinWait();
            }
        }
    }

    /**
     * Makes those of {@code layers} that belong to no model this model's (the caller holds
     * this lock). Waiting for their private locks cannot deadlock: only calls on the lone layer
     * hold those, and such a call waits for nothing else.
     */
    private void takeOver(java.util.List<LoraLayer> layers) {
        for (LoraLayer l : layers) {
            AdapterLock old = l.adapterLock;
            if (old == this || old.model) continue;
            if (old.rw.getReadHoldCount() > 0 || old.rw.isWriteLockedByCurrentThread()) {
                throw new IllegalStateException("a model-level adapter operation inside a call on one of its layers");
            }
            old.rw.writeLock().lock();
            try {
                if (l.adapterLock == old) l.adapterLock = this;
            } finally {
                old.rw.writeLock().unlock();
            }
        }
    }
}
