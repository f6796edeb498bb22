package dev.lora4j.lora;

import dev.lora4j.Tensor;
import dev.lora4j.io.PeftAdapter;
import dev.lora4j.nn.Module;
import java.io.IOException;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The adapters of many tenants over one base model, loaded on first use and evicted least
 * recently used under a memory budget: {@link #acquire acquire(name)} loads the PEFT folder
 * {@code root/name} as adapter {@code name} of the model ({@link PeftAdapter#load(Module, Path, String)})
 * unless it is resident, and returns a {@link Lease} that keeps it resident until closed. When
 * the factor bytes of the resident adapters exceed the budget, the least recently acquired
 * adapters that no lease holds are deleted from the model ({@link Lora#deleteAdapter}) until
 * they fit again. Adapters held by leases are never evicted, so the resident bytes may exceed
 * the budget by what the leases hold (one adapter larger than the budget stays while leased).
 *
 * <p>Use: {@code try (var lease = pool.acquire(tenant)) { Lora.forward(model, x, lease.name()); }}.
 * The pool owns the adapters it loaded (it is the only one that should add or delete adapters
 * of those names in the model); the model stays the caller's. A failed load (a missing or
 * broken folder) throws and leaves neither the model nor the pool changed; the next acquire of
 * that name tries again.
 *
 * <p>Thread-safe: any number of threads may acquire and release at once. Concurrent acquires
 * of a name that is not resident load it once; the others wait for that load. Loads and
 * evictions take the model's adapter write lock ({@link AdapterLock}) outside the pool's own
 * lock, so hits never wait for them. Do not acquire while the same thread runs a forward of
 * the model (inside a forward the adapter lock refuses changes). Holds no native resource.
 */
public final class AdapterPool {

    /** The pool's counters at one moment. {@code size} and {@code bytes} count resident (loaded) adapters. */
    public record Stats(int size, long bytes, long budgetBytes, int pinned, long hits, long misses, long loads, long evictions) {}

    private static final class Entry {
        final String name;
        final CompletableFuture<Void> loaded = new CompletableFuture<>();
        boolean ready;
        long bytes;
        int pins;

        Entry(String name) {
            this.name = name;
        }
    }

    private final Module model;
    private final Path root;
    private final long budgetBytes;
    /** Loading and resident adapters, least recently acquired first. Guarded by this. */
    private final LinkedHashMap<String, Entry> entries = new LinkedHashMap<>(16, 0.75f, true);
    /** Adapters being deleted from the model; an acquire of one waits for its deletion. Guarded by this. */
    private final Map<String, CompletableFuture<Void>> evicting = new HashMap<>();
    private long bytes;
    private long hits;
    private long misses;
    private long loads;
    private long evictions;

    /**
     * A pool of adapters of {@code model} read from the folders under {@code root}.
     *
     * @param budgetBytes the most factor bytes the unleased resident adapters may take
     * @throws IllegalArgumentException for a negative budget
     */
    public AdapterPool(Module model, Path root, long budgetBytes) {
        this.model = Objects.requireNonNull(model, "model");
        this.root = Objects.requireNonNull(root, "root").toAbsolutePath().normalize();
        if (budgetBytes < 0) throw new IllegalArgumentException("budgetBytes must be >= 0, got " + budgetBytes);
        this.budgetBytes = budgetBytes;
    }

    /**
     * Adapter {@code name}, loaded from {@code root/name} if it is not resident, held resident
     * until the lease is closed.
     *
     * @throws IllegalArgumentException when {@code name} is not a valid adapter name or a single
     *     folder name, or the model holds an adapter of that name that the pool did not load
     * @throws IOException when the folder is missing or malformed (see {@link PeftAdapter#load})
     */
    public Lease acquire(String name) throws IOException {
        Path dir = folder(name);
        while (true) {
            Entry e;
            boolean loader;
            CompletableFuture<Void> gone;
            synchronized (this) {
                gone = evicting.get(name);
                if (gone == null) {
                    e = entries.get(name); // marks it most recently used
                    loader = e == null;
                    if (loader) {
                        e = new Entry(name);
                        entries.put(name, e);
                        misses++;
                    } else {
                        hits++;
                    }
                    e.pins++;
                } else {
                    e = null;
                    loader = false;
                }
            }
            if (gone != null) {
                gone.join(); // the deletion under way ends first; then acquire afresh
                continue;
            }
            if (loader) load(e, dir);
            else awaitLoad(e);
            return new Lease(e);
        }
    }

    private Path folder(String name) {
        if (!Lora.isValidAdapterName(name) || name.indexOf('/') >= 0 || name.indexOf('\\') >= 0) {
            throw new IllegalArgumentException("adapter name must be a valid adapter name and a plain folder name, got '" + name + "'");
        }
        try {
            Path dir = root.resolve(name).normalize();
            if (!root.equals(dir.getParent())) throw new IllegalArgumentException("adapter name '" + name + "' is not a folder of " + root);
            return dir;
        } catch (InvalidPathException ex) {
            throw new IllegalArgumentException("adapter name '" + name + "' is not a folder name: " + ex.getMessage(), ex);
        }
    }

    private void load(Entry e, Path dir) throws IOException {
        try {
            PeftAdapter.load(model, dir, e.name);
            long b = factorBytes(model, e.name);
            List<Entry> victims;
            synchronized (this) {
                e.ready = true;
                e.bytes = b;
                bytes += b;
                loads++;
                victims = victims();
            }
            e.loaded.complete(null);
            evict(victims);
        } catch (IOException | RuntimeException | Error ex) {
            synchronized (this) {
                entries.remove(e.name);
            }
            e.loaded.completeExceptionally(ex);
            throw ex;
        }
    }

    private void awaitLoad(Entry e) throws IOException {
        try {
            e.loaded.join();
        } catch (CompletionException ce) {
            // the entry left the pool when its load failed: this acquire's pin goes with it
            Throwable c = ce.getCause();
            String msg = "loading adapter '" + e.name + "' failed: " + c.getMessage();
            if (c instanceof IOException) throw new IOException(msg, c);
            if (c instanceof IllegalArgumentException) throw new IllegalArgumentException(msg, c);
            if (c instanceof Error err) throw err;
            throw new IllegalStateException(msg, c);
        }
    }

    /** The bytes of the factors of adapter {@code name} in every LoRA layer of {@code model}. */
    static long factorBytes(Module model, String name) {
        return AdapterLock.reading(model, () -> {
            long n = 0;
            for (LoraLayer l : Lora.loraLayers(model).values()) {
                if (!l.hasAdapter(name)) continue;
                n += bytesOf(l.loraA(name)) + bytesOf(l.loraB(name));
            }
            return n;
        });
    }

    private static long bytesOf(Tensor t) {
        return t.numel() * t.dtype().byteSize();
    }

    /**
     * Takes the least recently used unleased resident adapters out of the pool until the rest
     * fit the budget, and marks them as being deleted. Holds this.
     */
    private List<Entry> victims() {
        List<Entry> out = new ArrayList<>();
        var it = entries.values().iterator();
        while (bytes > budgetBytes && it.hasNext()) {
            Entry e = it.next();
            if (!e.ready || e.pins > 0) continue;
            it.remove();
            bytes -= e.bytes;
            evictions++;
            evicting.put(e.name, new CompletableFuture<>());
            out.add(e);
        }
        return out;
    }

    /** Deletes the victims from the model, outside the pool's lock. One that cannot be deleted stays resident. */
    private void evict(List<Entry> victims) {
        for (Entry e : victims) {
            RuntimeException failure = null;
            try {
                Lora.deleteAdapter(model, e.name);
            } catch (RuntimeException ex) {
                failure = ex;
            }
            CompletableFuture<Void> done;
            synchronized (this) {
                done = evicting.remove(e.name);
                if (failure != null) { // e.g. merged into the base by someone else: still in the model
                    evictions--;
                    bytes += e.bytes;
                    entries.put(e.name, e);
                }
            }
            done.complete(null);
        }
    }

    private void release(Entry e) {
        List<Entry> victims;
        synchronized (this) {
            e.pins--;
            victims = victims();
        }
        evict(victims);
    }

    /** The pool's counters now. */
    public synchronized Stats stats() {
        int size = 0;
        int pinned = 0;
        for (Entry e : entries.values()) {
            if (!e.ready) continue;
            size++;
            if (e.pins > 0) pinned++;
        }
        return new Stats(size, bytes, budgetBytes, pinned, hits, misses, loads, evictions);
    }

    /** The resident adapters, least recently acquired first. */
    public synchronized List<String> residentNames() {
        return entries.values().stream().filter(e -> e.ready).map(e -> e.name).toList();
    }

    /** The configured budget in bytes. */
    public long budgetBytes() {
        return budgetBytes;
    }

    /**
     * A hold on one resident adapter: it is not evicted until {@link #close()}. Close it when
     * the forwards that use it are done. Thread-safe; {@link #close()} is idempotent.
     */
    public final class Lease implements AutoCloseable {
        private final Entry entry;
        private final AtomicBoolean closed = new AtomicBoolean();

        private Lease(Entry entry) {
            this.entry = entry;
        }

        /** The adapter's name in the model (as given to {@link #acquire}). */
        public String name() {
            return entry.name;
        }

        /** The adapter's factor bytes. */
        public long bytes() {
            synchronized (AdapterPool.this) {
                return entry.bytes;
            }
        }

        /** Releases the hold; the adapter may be evicted from now on. */
        @Override
        public void close() {
            if (closed.compareAndSet(false, true)) release(entry);
        }
    }
}
