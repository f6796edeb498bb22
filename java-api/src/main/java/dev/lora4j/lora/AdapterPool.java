package dev.lora4j.lora;

import dev.lora4j.Tensor;
import dev.lora4j.io.PeftAdapter;
import dev.lora4j.nn.Module;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The adapters of many tenants over one shared base model, loaded on first use and evicted least
 * recently used under a memory budget. {@link #acquire acquire(name)} loads the PEFT folder
 * {@code root/name} into the model ({@link PeftAdapter#loadShared}) unless it is resident, and
 * returns a {@link Lease} that keeps it resident until closed; {@link Lease#name()} is the
 * adapter's name in the model, to give to {@link Lora#forward(Module, Tensor, String...)} or
 * {@link Lora#withRowAdapters}. An adapter's resident bytes are measured from its tensors: its
 * LoRA factors (and DoRA magnitudes) in the model plus its {@code modules_to_save} tensors. When
 * the resident bytes exceed the budget, the least recently acquired adapters that no lease holds
 * are deleted from the model ({@link Lora#deleteAdapter}) until they fit again. Leased adapters are
 * never evicted, so the resident bytes may exceed the budget by what the leases hold (one adapter
 * larger than the budget stays while leased).
 *
 * <p>Shared base: since every tenant's rows go through the same base weights (mixed batches), an
 * adapter that would change them is refused with an {@link IOException} naming the config field,
 * before the model changes: {@code init_lora_weights} PiSSA and OLoRA (they rewrite the base
 * weight on load). {@code modules_to_save} (a tenant's own classifier head, say) are not written
 * into the model but kept per adapter: {@link Lease#modulesToSave()}. DoRA adapters are accepted
 * (mixed batches compute their rows exactly), but a layer that holds one computes every row of a
 * mixed batch adapter by adapter instead of in the fused kernel.
 *
 * <p>Ranks: {@link #acquire(String, int) acquire(name, rank)} serves a DyLoRA-trained adapter at
 * a lower rank: its factors cut to the first {@code rank} ranks, scale α/rank, a resident
 * adapter of its own (loaded from the same folder, counted and evicted as any other).
 *
 * <p>Replacing: {@link #invalidate(String)} drops every resident version of a name; the next
 * acquire loads the folder as it is then. Each load is a new adapter of the model with a name of
 * its own ({@code name~N}), so requests that hold a lease on the old version finish with it (it is
 * deleted when its last lease closes) while new requests get the new one: no forward ever sees a
 * mix, or an adapter half loaded (loads and deletions are single adapter changes,
 * {@link AdapterLock}).
 *
 * <p>Use: {@code try (var lease = pool.acquire(tenant)) { Lora.forward(model, x, lease.name()); }}.
 * The pool owns the adapters it loaded (no one else should delete them) and their
 * {@code modules_to_save} tensors; the model stays the caller's. A failed load (a missing or
 * broken folder) throws and leaves neither the model nor the pool changed; the next acquire of
 * that name tries again. {@link #close()} unloads everything.
 *
 * <p>Thread-safe: any number of threads may acquire, release and invalidate at once. Concurrent
 * acquires of a name that is not resident load it once; the others wait for that load. Loads and
 * deletions take the model's adapter write lock ({@link AdapterLock}) outside the pool's own lock,
 * so hits never wait for them. Do not acquire while the same thread runs a forward of the model
 * (inside a forward the adapter lock refuses changes).
 */
public final class AdapterPool implements AutoCloseable {

    /**
     * The pool's counters at one moment. {@code size} and {@code bytes} count the adapters the
     * pool holds in the model (resident, plus replaced ones still leased); {@code pinned} those
     * leased now; {@code evictions} the deletions the budget forced; {@code unloads} those
     * {@link #invalidate} caused.
     */
    public record Stats(int size, long bytes, long budgetBytes, int pinned, long hits, long misses, long loads, long evictions,
                        long unloads) {}

    private static final class Entry {
        final String key;
        final String name;
        final int rank;
        final String adapterName;
        final CompletableFuture<Void> loaded = new CompletableFuture<>();
        boolean ready;
        /** Replaced or unloaded by {@link #invalidate}: deleted when its last lease closes. */
        boolean retired;
        long bytes;
        int pins;
        PeftAdapter.SharedLoad data;

        Entry(String key, String name, int rank, String adapterName) {
            this.key = key;
            this.name = name;
            this.rank = rank;
            this.adapterName = adapterName;
        }
    }

    private final Module model;
    private final Path root;
    private final long budgetBytes;
    /** Loading and resident adapters by key ({@code name} or {@code name@rank}), least recently acquired first. Guarded by this. */
    private final LinkedHashMap<String, Entry> entries = new LinkedHashMap<>(16, 0.75f, true);
    /** Invalidated adapters still leased (or loading). Guarded by this. */
    private final List<Entry> retired = new ArrayList<>();
    private long versions;
    private long bytes;
    private long hits;
    private long misses;
    private long loads;
    private long evictions;
    private long unloads;
    private boolean closed;

    /**
     * A pool of adapters of {@code model} read from the folders under {@code root}.
     *
     * @param budgetBytes the most bytes the unleased resident adapters may take
     * @throws IllegalArgumentException for a negative budget
     */
    public AdapterPool(Module model, Path root, long budgetBytes) {
        this.model = Objects.requireNonNull(model, "model");
        this.root = Objects.requireNonNull(root, "root").toAbsolutePath().normalize();
        if (budgetBytes < 0) throw new IllegalArgumentException("budgetBytes must be >= 0, got " + budgetBytes);
        this.budgetBytes = budgetBytes;
    }

    /**
     * Adapter {@code name} as saved, loaded from {@code root/name} if it is not resident, held
     * resident until the lease is closed.
     *
     * @throws IllegalArgumentException when {@code name} is not a valid adapter name or a single folder name
     * @throws IOException when the folder is missing, malformed or would change the shared base
     *     (see {@link PeftAdapter#loadShared})
     */
    public Lease acquire(String name) throws IOException {
        return acquire(name, 0);
    }

    /**
     * Adapter {@code name} cut to its first {@code rank} ranks (DyLoRA's adapter at that rank;
     * 0: as saved), loaded from {@code root/name} if that rank of it is not resident.
     *
     * @throws IllegalArgumentException as {@link #acquire(String)}, or for a negative rank
     * @throws IOException as {@link #acquire(String)}, or when a module's rank is below {@code rank}
     */
    public Lease acquire(String name, int rank) throws IOException {
        Path dir = folder(name);
        if (rank < 0) throw new IllegalArgumentException("rank must be >= 0 (0: as saved), got " + rank);
        String key = rank == 0 ? name : name + "@" + rank;
        Entry e;
        boolean loader;
        synchronized (this) {
            if (closed) throw new IllegalStateException("the adapter pool is closed");
            e = entries.get(key); // marks it most recently used
            loader = e == null;
            if (loader) {
                e = new Entry(key, name, rank, name + "~" + ++versions);
                entries.put(key, e);
                misses++;
            } else {
                hits++;
            }
            e.pins++;
        }
        if (loader) load(e, dir);
        else awaitLoad(e);
        return new Lease(e);
    }

    private Path folder(String name) {
        if (!Lora.isValidAdapterName(name) || name.indexOf('/') >= 0 || name.indexOf('\\') >= 0 || name.indexOf('~') >= 0
                || name.indexOf('@') >= 0) {
            throw new IllegalArgumentException("adapter name must be a valid adapter name and a plain folder name without '~' or '@', got '"
                    + name + "'");
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
        PeftAdapter.SharedLoad data = null;
        try {
            data = PeftAdapter.loadShared(model, dir, e.adapterName, e.rank);
            long b = residentBytes(model, e.adapterName) + bytesOf(data.modulesToSave().values());
            List<Entry> victims;
            synchronized (this) {
                e.data = data;
                e.ready = true;
                e.bytes = b;
                bytes += b;
                loads++;
                victims = victims();
            }
            e.loaded.complete(null);
            delete(victims);
        } catch (IOException | RuntimeException | Error ex) {
            if (data != null && !e.ready) data.close(); // loaded, then failed measuring: undo below
            synchronized (this) {
                if (entries.get(e.key) == e) entries.remove(e.key);
                retired.remove(e);
            }
            if (data != null && !e.ready && Lora.adapterNames(model).contains(e.adapterName)) Lora.deleteAdapter(model, e.adapterName);
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

    /** The bytes of the tensors adapter {@code name} holds in {@code model}: its factors and DoRA magnitudes, in every LoRA layer. */
    static long residentBytes(Module model, String name) {
        return AdapterLock.reading(model, () -> {
            long n = 0;
            for (LoraLayer l : Lora.loraLayers(model).values()) {
                if (!l.hasAdapter(name)) continue;
                n += bytesOf(List.of(l.loraA(name), l.loraB(name)));
                if (l instanceof LoraLinear ll && ll.dora(name) != null) n += bytesOf(List.of(ll.dora(name).weight()));
            }
            return n;
        });
    }

    private static long bytesOf(java.util.Collection<Tensor> tensors) {
        long n = 0;
        for (Tensor t : tensors) n += t.numel() * t.dtype().byteSize();
        return n;
    }

    /**
     * Takes the least recently used unleased resident adapters out of the pool until the rest
     * fit the budget. Holds this.
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
            out.add(e);
        }
        return out;
    }

    /**
     * Deletes adapters the pool no longer holds from the model and frees their tensors, outside
     * the pool's lock. One that cannot be deleted (merged into the base by someone else) stays in
     * the model, counted, under its key unless a newer version took it; one no longer in the model
     * (deleted by someone else) just has its data freed.
     */
    private void delete(List<Entry> victims) {
        for (Entry e : victims) {
            try {
                // One deleted behind the pool's back has nothing left to delete: only its data to free
                // (looked up and deleted in one change, so a delete by another thread cannot come between).
                AdapterLock.changing(model, () -> {
                    if (Lora.adapterNames(model).contains(e.adapterName)) Lora.deleteAdapter(model, e.adapterName);
                    return null;
                });
                e.data.close();
            } catch (RuntimeException ex) {
                synchronized (this) {
                    bytes += e.bytes;
                    if (!entries.containsKey(e.key)) entries.put(e.key, e);
                    else retired.add(e);
                }
                System.getLogger(AdapterPool.class.getName()).log(System.Logger.Level.WARNING,
                        "adapter '" + e.adapterName + "' could not be deleted: " + ex.getMessage());
            }
        }
    }

    /**
     * Unloads every resident version (every rank) of {@code name}: unleased ones are deleted now,
     * leased ones when their last lease closes; the next acquire loads the folder afresh. Use it
     * after the folder changed, or to free memory. Returns how many versions it dropped.
     *
     * @throws IllegalArgumentException when {@code name} is not a valid adapter name
     */
    public int invalidate(String name) {
        folder(name);
        List<Entry> victims = new ArrayList<>();
        int n = 0;
        synchronized (this) {
            for (var it = entries.values().iterator(); it.hasNext(); ) {
                Entry e = it.next();
                if (!e.name.equals(name)) continue;
                it.remove();
                n++;
                unloads++;
                if (e.ready && e.pins == 0) {
                    bytes -= e.bytes;
                    victims.add(e);
                } else {
                    e.retired = true;
                    retired.add(e);
                }
            }
        }
        delete(victims);
        return n;
    }

    /**
     * Unloads every adapter ({@link #invalidate} of every name) and refuses acquires from now on;
     * leased adapters go when their leases close. Idempotent. The model stays the caller's.
     */
    @Override
    public void close() {
        List<String> names;
        synchronized (this) {
            closed = true;
            names = entries.values().stream().map(e -> e.name).distinct().toList();
        }
        names.forEach(this::invalidate);
    }

    private void release(Entry e) {
        List<Entry> victims;
        synchronized (this) {
            e.pins--;
            victims = new ArrayList<>();
            if (e.retired && e.pins == 0 && e.ready && retired.remove(e)) {
                bytes -= e.bytes;
                victims.add(e);
            }
            victims.addAll(victims());
        }
        delete(victims);
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
        for (Entry e : retired) {
            if (!e.ready) continue;
            size++;
            if (e.pins > 0) pinned++;
        }
        return new Stats(size, bytes, budgetBytes, pinned, hits, misses, loads, evictions, unloads);
    }

    /** The resident adapters' keys ({@code name}, or {@code name@rank} for a cut one), least recently acquired first. */
    public synchronized List<String> residentNames() {
        return entries.values().stream().filter(e -> e.ready).map(e -> e.key).toList();
    }

    /** The configured budget in bytes. */
    public long budgetBytes() {
        return budgetBytes;
    }

    /**
     * A hold on one resident adapter: it is not evicted or deleted until {@link #close()}.
     * Close it when the forwards that use it are done; its {@link #modulesToSave()} tensors are
     * valid until then. Thread-safe; {@link #close()} is idempotent.
     */
    public final class Lease implements AutoCloseable {
        private final Entry entry;
        private final AtomicBoolean closed = new AtomicBoolean();

        private Lease(Entry entry) {
            this.entry = entry;
        }

        /** The adapter's name in the model ({@code name~N}: one per load), for {@link Lora#forward(Module, Tensor, String...)}. */
        public String name() {
            return entry.adapterName;
        }

        /** The name given to {@link #acquire}: the folder's. */
        public String tenant() {
            return entry.name;
        }

        /** The rank it was cut to, or 0 for the adapter as saved. */
        public int rank() {
            return entry.rank;
        }

        /** The adapter's resident bytes (factors, DoRA magnitudes, modules_to_save). */
        public long bytes() {
            synchronized (AdapterPool.this) {
                return entry.bytes;
            }
        }

        /** The text of the {@code adapter_config.json} this version was loaded from (for fields of the caller's own). */
        public String config() {
            return new String(entry.data.configJson(), StandardCharsets.UTF_8);
        }

        /** The load's report (modules wrapped, config as read). */
        public PeftAdapter.LoadReport report() {
            return entry.data.report();
        }

        /**
         * The adapter's {@code modules_to_save} tensors by parameter path ({@code classifier.weight}),
         * owned by the pool: valid while this lease is open, never to be closed or changed by the caller.
         */
        public Map<String, Tensor> modulesToSave() {
            if (closed.get()) throw new IllegalStateException("the lease on adapter '" + entry.key + "' is closed");
            return entry.data.modulesToSave();
        }

        /** Releases the hold; the adapter may be evicted from now on. */
        @Override
        public void close() {
            if (closed.compareAndSet(false, true)) release(entry);
        }
    }

    /** For tests: the model adapter names of every version the pool holds. */
    synchronized List<String> adapterNames() {
        List<String> out = new ArrayList<>();
        for (Entry e : entries.values()) if (e.ready) out.add(e.adapterName);
        for (Entry e : retired) if (e.ready) out.add(e.adapterName);
        return out;
    }
}
