package dev.lora4j.examples.serve;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.examples.TextFineTune;
import dev.lora4j.examples.data.PackageDataset;
import dev.lora4j.examples.data.Tenant;
import dev.lora4j.examples.text.MeanPoolingClassifier;
import dev.lora4j.examples.text.MiniLmCheckpoint;
import dev.lora4j.examples.text.TextFineTuneTest;
import dev.lora4j.hftools.BertTokenizer;
import dev.lora4j.io.PeftAdapter;
import dev.lora4j.models.bert.BertLoader;
import dev.lora4j.models.bert.BertModel;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The whole life of a tenant: TextFineTune's LoRA run (a small random BERT with MiniLM's
 * tokenizer, as TextFineTuneTest) saves its adapter folder, and the {@code /classify} machinery
 * serves that folder as it is, beside a random tenant in the same batch: every row of the
 * trained tenant gets the class the trained model predicted and the probabilities of the folder
 * loaded by the plain PEFT loader into a model of its own.
 */
class TrainedTenantTest {

    @TempDir
    static Path dir;

    @Test
    void aFineTunedAdapterFolderIsServedAsItWasTrainedInAMixedBatch() throws Exception {
        Path checkpoint = TextFineTuneTest.smallCheckpoint(dir.resolve("small-bert"));
        Tenant tenant = new Tenant("test", List.of("python", "perl"));
        PackageDataset data = TextFineTuneTest.data(tenant);
        var s = new TextFineTune.Settings(tenant, 64, 3, 32, 16, 2e-2, 5e-2, TextFineTune.Mode.LORA, 8, 16, 0.1, 0.01, 1.0, 0,
                dir.resolve("tenants"), dir.resolve("cache"), null, null, false);
        TextFineTune.Result r = TextFineTune.run(s, data, checkpoint);
        String trained = r.adapter().getFileName().toString();
        try (BertModel encoder = BertLoader.bertModel(checkpoint)) {
            TenantFolders.createRandom(encoder, r.adapter().getParent(), 1, 15, 0);
        }
        List<String> texts = new ArrayList<>();
        List<String> tenants = new ArrayList<>();
        for (PackageDataset.Example e : data.test()) {
            texts.add(e.text());
            tenants.add(trained);
            texts.add(e.text());
            tenants.add(TenantFolders.name(0));
        }
        List<TenantClassifier.Row> rows;
        try (TenantClassifier served = TenantClassifier.open(new TenantClassifier.Settings(r.adapter().getParent(), checkpoint, 1L << 30, 32, 2000))) {
            rows = served.classify(new ClassifyRequest(texts, tenants, Collections.nCopies(texts.size(), null)));
        }
        double[][] reference = reference(checkpoint, r.adapter(), data.test().stream().map(PackageDataset.Example::text).toList());
        long[] predicted = r.test().predictions();
        for (int i = 0; i < data.test().size(); i++) {
            TenantClassifier.Row row = rows.get(2 * i);
            assertEquals(tenant.sections(), row.labels(), "the folder carries the class names");
            assertEquals(predicted[i], row.index(), "row " + i + ": the class the trained model predicted");
            for (int k = 0; k < 2; k++) assertEquals(reference[i][k], row.probabilities()[k], 1e-5, "row " + i + " class " + k);
            assertEquals(11, rows.get(2 * i + 1).labels().size(), "the random tenant's row has its own head");
        }
    }

    /** Softmax of the folder loaded by the plain PEFT loader into a model of its own, one text at a time. */
    static double[][] reference(Path checkpoint, Path adapter, List<String> texts) throws Exception {
        double[][] out = new double[texts.size()][];
        try (MeanPoolingClassifier m = new MeanPoolingClassifier(BertLoader.bertModel(checkpoint), 2);
             BertTokenizer tok = BertTokenizer.fromFile(MiniLmCheckpoint.tokenizer(checkpoint), 32);
             var ng = Torch.noGrad()) {
            PeftAdapter.load(m, adapter);
            m.eval();
            for (int i = 0; i < texts.size(); i++) {
                try (TensorScope scope = TensorScope.open()) {
                    var b = tok.encode(List.of(texts.get(i)));
                    Tensor p = m.forward(b.inputIds(), b.attentionMask(), b.tokenTypeIds()).softmax(1);
                    out[i] = p.toDoubleArray();
                }
            }
        }
        return out;
    }
}
