package dev.lora4j.examples.serve;

import com.fasterxml.jackson.databind.JsonNode;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.examples.text.MeanPoolingClassifier;
import dev.lora4j.examples.text.MiniLmCheckpoint;
import dev.lora4j.hftools.BertTokenizer;
import dev.lora4j.io.PeftAdapter;
import dev.lora4j.lora.AdapterLock;
import dev.lora4j.lora.AdapterPool;
import dev.lora4j.lora.Lora;
import dev.lora4j.models.bert.BertLoader;
import dev.lora4j.models.bert.BertModel;
import dev.lora4j.nn.Functional;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The {@code /classify} side of the service: many tenants' text classifiers over one shared
 * all-MiniLM-L6-v2 encoder. A tenant is a PEFT folder under the tenants root
 * ({@link TenantFolders}: LoRA factors for the encoder, its classifier head as
 * {@code modules_to_save}, its label names); an {@link AdapterPool} loads tenants on first use
 * and evicts the least recently used under a byte budget. A request's texts are tokenized
 * together ({@link BertTokenizer}), go through the encoder in ONE forward with each row's
 * tenant adapter on its rows ({@link Lora#withRowAdapters}; the encoder skips the padding, each
 * real token with its row's adapter), then each row through its tenant's own head (Linear +
 * softmax over the sentence embedding, {@link MeanPoolingClassifier}).
 * DyLoRA tenants may be asked for a rank 1..r: the pool's cut of the adapter to that rank.
 *
 * <p>Threads: {@link #classify} runs from many threads at once while {@link #reload} and
 * {@link #unload} replace tenants: every request holds leases on the versions it uses, so it
 * finishes with them whole while later requests get the new ones. Owns the encoder, tokenizer
 * and pool; {@link #close} frees them once no request runs.
 */
final class TenantClassifier implements AutoCloseable {

    /**
     * @param tenantsRoot the folder of the tenants' adapter folders
     * @param minilmDir the MiniLM folder ({@link MiniLmCheckpoint}; made when missing)
     * @param budgetBytes the pool's memory budget for unleased adapters
     * @param maxTokens texts are truncated to this many tokens ([CLS] and [SEP] included)
     * @param maxChars longer texts are refused (413)
     */
    record Settings(Path tenantsRoot, Path minilmDir, long budgetBytes, int maxTokens, int maxChars) {
        Settings {
            if (budgetBytes < 0) throw new IllegalArgumentException("budgetBytes must be >= 0, got " + budgetBytes);
            if (maxTokens < 2 || maxTokens > 512) throw new IllegalArgumentException("maxTokens must be in 2..512, got " + maxTokens);
            if (maxChars < 1) throw new IllegalArgumentException("maxChars must be >= 1, got " + maxChars);
        }
    }

    /** What one loaded tenant version says of itself. */
    record Info(List<String> labels, boolean dylora, int rank, Tensor weight, Tensor bias) {}

    /** One row's answer; {@code rank} is the adapter rank used. */
    record Row(String tenant, int index, List<String> labels, float[] probabilities, int rank, boolean dylora) {
        String label() {
            return labels.get(index);
        }
    }

    private final MeanPoolingClassifier trunk;
    private final BertTokenizer tokenizer;
    private final AdapterPool pool;
    private final Path root;
    private final long hidden;
    private final Settings settings;
    private volatile boolean closed;

    private TenantClassifier(MeanPoolingClassifier trunk, BertTokenizer tokenizer, Path root, Settings settings) {
        this.trunk = trunk;
        this.tokenizer = tokenizer;
        this.root = root;
        this.settings = settings;
        this.hidden = trunk.bert().config().hiddenSize();
        this.pool = new AdapterPool(trunk, root, settings.budgetBytes());
    }

    /** Loads the encoder and tokenizer; the tenants root must exist. */
    static TenantClassifier open(Settings s) throws IOException {
        if (!Files.isDirectory(s.tenantsRoot())) throw new IOException("the tenants root " + s.tenantsRoot() + " is not a directory");
        Path dir = MiniLmCheckpoint.ensureFolder(s.minilmDir());
        BertModel bert = BertLoader.bertModel(dir);
        try {
            BertTokenizer tok = BertTokenizer.fromFile(MiniLmCheckpoint.tokenizer(dir), s.maxTokens());
            MeanPoolingClassifier trunk = MeanPoolingClassifier.sharing(bert);
            trunk.requiresGrad_(false);
            trunk.eval();
            return new TenantClassifier(trunk, tok, s.tenantsRoot().toRealPath(), s);
        } catch (IOException | RuntimeException e) {
            bert.close();
            throw e;
        }
    }

    Settings settings() {
        return settings;
    }

    AdapterPool.Stats stats() {
        return pool.stats();
    }

    List<String> resident() {
        return pool.residentNames();
    }

    // ------------------------------------------------------------------ tenants

    private void requireFolder(String tenant) {
        if (!Files.isDirectory(root.resolve(tenant), LinkOption.NOFOLLOW_LINKS)) {
            throw ApiError.notFound("no tenant '" + tenant + "' (no folder of that name under the tenants root)");
        }
    }

    /**
     * Refuses a tenant folder whose files are symbolic links: a tenant is read from inside the
     * tenants root only, and an error about a linked file could echo a file from elsewhere. (A
     * link swapped in between this check and the pool's read is still followed; the error then
     * reports the link, not the read.)
     */
    private void requireNoLinks(String tenant) {
        for (String f : new String[] {PeftAdapter.CONFIG, PeftAdapter.WEIGHTS}) {
            if (Files.isSymbolicLink(root.resolve(tenant).resolve(f))) {
                throw ApiError.unprocessable("tenant '" + tenant + "': " + f + " is a symbolic link; tenant files must be regular files in the tenant's folder");
            }
        }
    }

    /** A lease on {@code tenant} at {@code rank} (0: as saved); 404 without a folder, 422 when it cannot be served. */
    private AdapterPool.Lease lease(String tenant, int rank) {
        requireFolder(tenant);
        requireNoLinks(tenant);
        try {
            return pool.acquire(tenant, rank);
        } catch (IOException e) {
            requireFolder(tenant); // removed meanwhile
            requireNoLinks(tenant); // linked meanwhile: say so, not what the read met
            String m = String.valueOf(e.getMessage()).replace(root.toString(), "<tenants>");
            throw ApiError.unprocessable("tenant '" + tenant + "' cannot be served: " + (m.length() <= 300 ? m : m.substring(0, 297) + "..."));
        } catch (IllegalStateException e) {
            throw new ApiError(503, "the service is shutting down");
        }
    }

    /**
     * The labels, kind, rank and head of a leased version, checked (422 when the folder does not
     * describe a classifier; the refused version then leaves the pool instead of taking budget
     * until it is evicted).
     */
    private Info info(AdapterPool.Lease l) {
        try {
            return checkedInfo(l);
        } catch (ApiError e) {
            pool.invalidate(l.tenant());
            throw e;
        }
    }

    private Info checkedInfo(AdapterPool.Lease l) {
        String t = l.tenant();
        JsonNode cfg;
        try {
            cfg = Exchanges.JSON.readTree(l.config());
        } catch (IOException e) {
            throw ApiError.unprocessable("tenant '" + t + "': adapter_config.json is not JSON");
        }
        JsonNode ls = cfg.get(TenantFolders.LABELS);
        if (ls == null || !ls.isArray() || ls.size() < 2) {
            throw ApiError.unprocessable("tenant '" + t + "': adapter_config.json needs '" + TenantFolders.LABELS + "', an array of at least two label names");
        }
        List<String> labels = new ArrayList<>();
        for (JsonNode n : ls) {
            if (!n.isTextual()) throw ApiError.unprocessable("tenant '" + t + "': " + TenantFolders.LABELS + " must hold strings");
            labels.add(n.asText());
        }
        for (String k : l.modulesToSave().keySet()) {
            if (!k.equals("classifier.weight") && !k.equals("classifier.bias")) {
                throw ApiError.unprocessable("tenant '" + t + "': modules_to_save tensor '" + AdapterFolders.clip(k)
                        + "' is not part of the classifier head; a tenant may replace only classifier.weight and classifier.bias");
            }
        }
        Tensor w = l.modulesToSave().get("classifier.weight");
        Tensor b = l.modulesToSave().get("classifier.bias");
        if (w == null || b == null || w.dim() != 2 || w.size(0) != labels.size() || w.size(1) != hidden || b.dim() != 1
                || b.size(0) != labels.size()) {
            throw ApiError.unprocessable("tenant '" + t + "': modules_to_save must hold classifier.weight (" + labels.size() + ", " + hidden
                    + ") and classifier.bias (" + labels.size() + ") for its " + labels.size() + " labels");
        }
        return new Info(List.copyOf(labels), cfg.path(DyLoraFolders.MARKER).asBoolean(false), l.report().config().r(), w, b);
    }

    /**
     * Unloads every version of {@code tenant} and loads its folder as it is now (the next requests
     * use it; running ones finish with theirs). Returns the new version's info and how many
     * versions were dropped.
     */
    Map<String, Object> reload(String tenant) {
        requireFolder(tenant);
        int dropped = pool.invalidate(tenant);
        try (AdapterPool.Lease l = lease(tenant, 0)) {
            Info i = info(l);
            Map<String, Object> out = new LinkedHashMap<>();
            out.put("tenant", tenant);
            out.put("unloaded", dropped);
            out.put("kind", i.dylora() ? "dylora" : "lora");
            out.put("rank", i.rank());
            out.put("labels", i.labels());
            out.put("bytes", l.bytes());
            return out;
        }
    }

    /** Unloads every version of {@code tenant} (running requests finish with theirs); returns how many. */
    int unload(String tenant) {
        return pool.invalidate(tenant);
    }

    // ------------------------------------------------------------------ inference

    /** The rows' answers, in request order. */
    List<Row> classify(ClassifyRequest req) {
        if (closed) throw new ApiError(503, "the service is shutting down");
        int n = req.rows();
        Map<String, AdapterPool.Lease> leases = new LinkedHashMap<>();
        Map<String, Info> infos = new LinkedHashMap<>();
        String[] keys = new String[n];
        String[] names = new String[n];
        int[] ranks = new int[n];
        try {
            for (int i = 0; i < n; i++) {
                String t = req.tenants().get(i);
                Integer asked = req.ranks().get(i);
                Info full = leased(t, 0, leases, infos);
                if (asked != null && !full.dylora()) {
                    throw ApiError.badRequest("tenant '" + t + "' is a LoRA adapter of rank " + full.rank() + ": 'rank' applies to DyLoRA tenants only");
                }
                if (asked != null && asked > full.rank()) {
                    throw ApiError.badRequest("'rank' must be in 1.." + full.rank() + " for tenant '" + t + "' (its r_max), got " + asked);
                }
                int cut = asked == null || asked == full.rank() ? 0 : asked;
                keys[i] = cut == 0 ? t : t + "@" + cut;
                Info version = leased(t, cut, leases, infos);
                // A cut is loaded from the folder as it is now: it must be the version checked above.
                if (version.dylora() != full.dylora() || !version.labels().equals(full.labels())
                        || !leases.get(keys[i]).config().equals(leases.get(t).config())) {
                    throw new ApiError(409, "tenant '" + t + "' changed on disk while the request ran (its folder was replaced);"
                            + " reload it (POST /tenants/" + t + "/reload) or try again");
                }
                names[i] = leases.get(keys[i]).name();
                ranks[i] = cut == 0 ? full.rank() : cut;
            }
            float[][] probs = new float[n][];
            try (var ng = Torch.noGrad(); TensorScope scope = TensorScope.open()) {
                BertTokenizer.Batch b = tokenizer.encode(req.texts());
                Tensor emb = Lora.withRowAdapters(trunk, n, () -> trunk.embed(b.inputIds(), b.attentionMask(), b.tokenTypeIds()), names);
                Map<String, List<Integer>> groups = new LinkedHashMap<>();
                for (int i = 0; i < n; i++) groups.computeIfAbsent(keys[i], k -> new ArrayList<>()).add(i);
                for (var g : groups.entrySet()) {
                    Info info = infos.get(g.getKey());
                    long[] idx = g.getValue().stream().mapToLong(Integer::longValue).toArray();
                    Tensor rows = idx.length == n ? emb : emb.indexSelect(0, Tensor.of(idx, idx.length));
                    float[] p = Functional.linear(rows, info.weight(), info.bias()).softmax(1).toFloatArray();
                    int k = info.labels().size();
                    for (int j = 0; j < idx.length; j++) probs[(int) idx[j]] = java.util.Arrays.copyOfRange(p, j * k, (j + 1) * k);
                }
            }
            List<Row> out = new ArrayList<>(n);
            for (int i = 0; i < n; i++) {
                Info info = infos.get(keys[i]);
                int best = 0;
                for (int k = 1; k < probs[i].length; k++) if (probs[i][k] > probs[i][best]) best = k;
                out.add(new Row(req.tenants().get(i), best, info.labels(), probs[i], ranks[i], info.dylora()));
            }
            return out;
        } finally {
            leases.values().forEach(AdapterPool.Lease::close);
        }
    }

    /** The info of {@code tenant} at {@code cut}, leased once per request. */
    private Info leased(String tenant, int cut, Map<String, AdapterPool.Lease> leases, Map<String, Info> infos) {
        String key = cut == 0 ? tenant : tenant + "@" + cut;
        Info i = infos.get(key);
        if (i != null) return i;
        AdapterPool.Lease l = lease(tenant, cut);
        leases.put(key, l);
        i = info(l);
        infos.put(key, i);
        return i;
    }

    /** Unloads every tenant, then frees the encoder (once no forward runs) and the tokenizer. Idempotent. */
    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        pool.close();
        AdapterLock.changing(trunk, () -> {
            trunk.close();
            return null;
        });
        tokenizer.close();
    }
}
