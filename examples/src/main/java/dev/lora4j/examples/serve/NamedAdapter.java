package dev.lora4j.examples.serve;

import dev.lora4j.nn.Sequential;
import java.nio.file.Path;
import java.util.List;

/**
 * What the service knows of one loaded adapter. A LoRA adapter lives in the served model
 * itself (lora4j's named adapters: one more adapter in each LoRA layer it covers). A DyLoRA
 * adapter ({@code "lora4j_dylora": true} in its {@code adapter_config.json}, see
 * {@link DyLoraFolders}) lives in a model of its own whose linear layers share the base
 * model's weights ({@link SharedLinear}), since a DyLoRA layer holds one adapter; it can be
 * served at any rank 1..{@code rank}.
 *
 * @param rank the adapter's rank (r_max for DyLoRA; the smallest over its layers)
 * @param layers the module paths it covers
 * @param reported config fields the PEFT loader did not use (unknown or descriptive)
 * @param dylora the DyLoRA adapter's own model, or null for a LoRA adapter
 */
record NamedAdapter(String name, Path folder, int rank, List<String> layers, List<String> reported, Sequential dylora)
        implements AutoCloseable {

    boolean isDyLora() {
        return dylora != null;
    }

    /** Frees a DyLoRA adapter's model (its handles; the base weights it shares live on). */
    @Override
    public void close() {
        if (dylora != null) dylora.close();
    }
}
