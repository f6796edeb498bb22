package dev.lora4j.nn;

import dev.lora4j.Tensor;
import dev.lora4j.Torch;
import dev.lora4j.internal.Calls;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.function.Function;

/**
 * A node of a model, as PyTorch's {@code nn.Module}: named parameters, buffers and child
 * modules, addressed by dotted names ({@code "0.weight"}, {@code "fc1.lora_A.weight"}) exactly
 * as PyTorch's {@code state_dict} names them, so that PyTorch and PEFT files map one to one.
 *
 * <h2>Ownership</h2>
 * A module owns every tensor registered in it and every
 * child module; {@link #close()} frees them all. Tensors returned by {@link #forward} belong to
 * the caller (or the caller's scope); the intermediate tensors a forward pass creates are
 * freed before it returns. Accessors such as {@link #parameter(String)} return the module's
 * own tensor: do not close it.
 *
 * <h2>Parametrizations</h2>
 * A parameter can be replaced by a computed value, as {@code torch.nn.utils.parametrize} does
 * (see {@link Parametrize}): the original then lives at
 * {@code parametrizations.<name>.original} and layers see the computed value.
 *
 * <h2>Thread-safety</h2>
 * In eval mode, {@link #forward} may be called from many threads at once (it only reads the
 * module). Training, structural changes ({@code register*}, surgery, merging) and
 * {@link #close()} are single-threaded: do them from one thread with no concurrent forwards.
 * Adapter changes through {@code dev.lora4j.lora}, {@code dev.lora4j.dylora} and
 * {@code PeftAdapter.load} are the exception: they may run while forwards do (see
 * {@link dev.lora4j.lora.AdapterLock}).
 */
public abstract class Module implements AutoCloseable {

    private final Map<String, Tensor> parameters = new LinkedHashMap<>();
    private final Map<String, Tensor> buffers = new LinkedHashMap<>();
    private final Map<String, Module> children = new LinkedHashMap<>();
    private boolean training = true;
    private boolean closed;

    /** The computation of this module. The result belongs to the caller. */
    public abstract Tensor forward(Tensor input);

    // ------------------------------------------------------------------ registration

    /**
     * Registers {@code value} as parameter {@code name} (null for an absent one, like a
     * missing bias) and takes ownership of it. Its requires-grad flag is left as it is: new
     * layers create their parameters with {@code requiresGrad_(true)}, as {@code nn.Parameter}.
     */
    protected final Tensor registerParameter(String name, Tensor value) {
        checkName(name, parameters);
        if (value != null) Calls.own(value);
        Tensor old = parameters.put(name, value);
        if (old != null && old != value) old.close();
        return value;
    }

    /** Registers a tensor that is state but not a parameter (like BatchNorm's running mean). */
    protected final Tensor registerBuffer(String name, Tensor value) {
        checkName(name, buffers);
        Objects.requireNonNull(value, "value");
        Calls.own(value);
        Tensor old = buffers.put(name, value);
        if (old != null && old != value) old.close();
        return value;
    }

    /** Registers (or replaces, closing nothing) child module {@code name}. */
    protected final <M extends Module> M registerModule(String name, M module) {
        checkName(name, children);
        Objects.requireNonNull(module, "module");
        refuseCycle(module);
        children.put(name, module);
        return module;
    }

    /** Refuses {@code module} as a child when it is this module or holds it: the tree would have no end. */
    private void refuseCycle(Module module) {
        if (module == this || module.namedModules().values().stream().anyMatch(m -> m == this)) {
            throw new IllegalArgumentException(module.getClass().getSimpleName() + " cannot be a child of "
                    + getClass().getSimpleName() + ": it is that module or contains it");
        }
    }

    /** Removes parameter {@code name} without closing it and returns it (the caller owns it). */
    protected final Tensor removeParameter(String name) {
        if (!parameters.containsKey(name)) throw new IllegalArgumentException("no parameter '" + name + "' in " + getClass().getSimpleName());
        return parameters.remove(name);
    }

    /**
     * Replaces existing child {@code name} by {@code module}, keeping its place in the order
     * (model surgery, as {@code setattr(parent, name, module)}). Returns the previous child,
     * which is not closed: the caller owns it now (or it lives on inside {@code module}).
     */
    public final Module replaceChild(String name, Module module) {
        Objects.requireNonNull(module, "module");
        Module old = child(name);
        refuseCycle(module);
        children.put(name, module);
        return old;
    }

    /** Removes child {@code name} without closing it and returns it. */
    protected final Module removeModule(String name) {
        Module m = children.remove(name);
        if (m == null) throw new IllegalArgumentException("no child module '" + name + "' in " + getClass().getSimpleName());
        return m;
    }

    private void checkName(String name, Map<String, ?> kind) {
        ensureOpen();
        Objects.requireNonNull(name, "name");
        if (name.isEmpty() || name.contains(".")) {
            throw new IllegalArgumentException("a module member name must be non-empty and without dots, got '" + name + "'");
        }
        for (Map<String, ?> other : List.of(parameters, buffers, children)) {
            if (other != kind && other.containsKey(name)) {
                throw new IllegalArgumentException("'" + name + "' is already used by another member of " + getClass().getSimpleName());
            }
        }
    }

    // ------------------------------------------------------------------ access

    /** This module's own parameter {@code name} (not a child's); null for an absent one. */
    public final Tensor parameter(String name) {
        ensureOpen();
        if (!parameters.containsKey(name)) {
            throw new IllegalArgumentException("no parameter '" + name + "' in " + getClass().getSimpleName()
                    + (Parametrize.isParametrized(this, name) ? " (it is parametrized: see Parametrize)" : ""));
        }
        return parameters.get(name);
    }

    /**
     * The tensor stored for parameter {@code name}: the parameter itself, or its original when
     * it is parametrized (owned by the module; null for an absent one).
     */
    public final Tensor storedParameter(String name) {
        return Parametrize.isParametrized(this, name) ? Parametrize.original(this, name) : parameter(name);
    }

    /** Whether this module has its own parameter (or parametrized parameter) {@code name}. */
    public final boolean hasParameter(String name) {
        return parameters.containsKey(name) || Parametrize.isParametrized(this, name);
    }

    /** Child module {@code name}. */
    public final Module child(String name) {
        Module m = children.get(name);
        if (m == null) throw new IllegalArgumentException("no child module '" + name + "' in " + getClass().getSimpleName());
        return m;
    }

    /** The module at a dotted path ({@code ""} is this module). */
    public final Module module(String path) {
        Module m = this;
        if (path.isEmpty()) return m;
        for (String part : path.split("\\.")) m = m.child(part);
        return m;
    }

    /**
     * Runs {@code body} with the value of parameter {@code name} as layers see it: the stored
     * tensor, or the parametrized value, computed for this call and freed after it.
     */
    protected final <R> R withParameter(String name, Function<Tensor, R> body) {
        ensureOpen();
        if (Parametrize.isParametrized(this, name)) {
            try (Tensor value = Parametrize.compute(this, name)) {
                return body.apply(value);
            }
        }
        return body.apply(parameter(name));
    }

    /** Child modules in registration order. */
    public final Map<String, Module> children() {
        return Collections.unmodifiableMap(children);
    }

    /** Every module of the tree by dotted path, this one first under {@code ""}. */
    public final Map<String, Module> namedModules() {
        Map<String, Module> out = new LinkedHashMap<>();
        collectModules("", out);
        return out;
    }

    private void collectModules(String prefix, Map<String, Module> out) {
        out.put(prefix, this);
        children.forEach((n, m) -> m.collectModules(prefix.isEmpty() ? n : prefix + "." + n, out));
    }

    /** Every parameter of the tree by dotted name, in PyTorch's order (own first, then children). */
    public final Map<String, Tensor> namedParameters() {
        ensureOpen();
        Map<String, Tensor> out = new LinkedHashMap<>();
        namedModules().forEach((path, m) -> m.parameters.forEach((n, t) -> {
            if (t != null) out.putIfAbsent(path.isEmpty() ? n : path + "." + n, t);
        }));
        return out;
    }

    /**
     * Every parameter of the tree, each once, in {@link #namedParameters()}'s order: a module used
     * at two places of the tree (shared weights) gives its parameters once, as PyTorch's
     * {@code parameters()}, while {@link #namedParameters()} names them at every place (as a state dict).
     */
    public final List<Tensor> parameters() {
        Set<Tensor> once = Collections.newSetFromMap(new IdentityHashMap<>());
        List<Tensor> out = new ArrayList<>();
        for (Tensor t : namedParameters().values()) if (once.add(t)) out.add(t);
        return out;
    }

    /** Parameters that currently require gradients (what an optimizer should get), each once as in {@link #parameters()}. */
    public final List<Tensor> trainableParameters() {
        return parameters().stream().filter(Tensor::requiresGrad).toList();
    }

    public final Map<String, Tensor> namedBuffers() {
        ensureOpen();
        Map<String, Tensor> out = new LinkedHashMap<>();
        namedModules().forEach((path, m) -> m.buffers.forEach((n, t) -> out.put(path.isEmpty() ? n : path + "." + n, t)));
        return out;
    }

    /** Total number of parameter elements (a shared parameter counted once, as {@link #parameters()}). */
    public final long parameterCount() {
        return parameters().stream().mapToLong(Tensor::numel).sum();
    }

    /** Number of parameter elements that require gradients (a shared parameter counted once). */
    public final long trainableParameterCount() {
        return trainableParameters().stream().mapToLong(Tensor::numel).sum();
    }

    // ------------------------------------------------------------------ modes

    /** Sets training mode on the whole tree, as {@code module.train(mode)}; returns this. */
    public Module train(boolean mode) {
        training = mode;
        children.values().forEach(c -> c.train(mode));
        return this;
    }

    public final Module train() {
        return train(true);
    }

    /** Evaluation mode: dropout off. */
    public final Module eval() {
        return train(false);
    }

    public final boolean isTraining() {
        return training;
    }

    /** Sets requires_grad on every parameter of the tree; returns this. */
    public final Module requiresGrad_(boolean requiresGrad) {
        namedParameters().values().forEach(p -> p.requiresGrad_(requiresGrad));
        return this;
    }

    /** Freezes every parameter ({@code requiresGrad_(false)}); returns this. */
    public final Module freeze() {
        return requiresGrad_(false);
    }

    /** Drops every parameter's gradient (PyTorch ≥ 2.0's {@code zero_grad()}). */
    public final void zeroGrad() {
        namedParameters().values().forEach(Tensor::clearGrad);
    }

    /**
     * Converts every floating-point parameter and buffer of the tree to {@code dtype}, in place
     * (as {@code module.to(dtype)}, {@code .double()}, {@code .half()}); requires-grad flags are
     * kept. Returns this. Unlike PyTorch, which swaps the data under the same Parameter
     * objects, the module gets new parameter tensors and closes the old ones: take parameter
     * handles, and build optimizers, after converting.
     */
    public final Module to(dev.lora4j.DType dtype) {
        Objects.requireNonNull(dtype, "dtype");
        if (!dtype.isFloatingPoint()) throw new IllegalArgumentException("modules convert to floating-point types only, not " + dtype);
        for (Module m : namedModules().values()) {
            for (var e : m.parameters.entrySet()) {
                Tensor p = e.getValue();
                if (p == null || !p.dtype().isFloatingPoint() || p.dtype() == dtype) continue;
                boolean rg = p.requiresGrad();
                Tensor converted;
                try (var ng = Torch.noGrad()) {
                    converted = p.to(dtype);
                }
                Calls.own(converted);
                converted.requiresGrad_(rg);
                e.setValue(converted);
                p.close();
            }
            for (var e : m.buffers.entrySet()) {
                Tensor b = e.getValue();
                if (!b.dtype().isFloatingPoint() || b.dtype() == dtype) continue;
                Tensor converted = b.to(dtype);
                Calls.own(converted);
                e.setValue(converted);
                b.close();
            }
        }
        return this;
    }

    // ------------------------------------------------------------------ state dict

    /**
     * Parameters and buffers by dotted name, as {@code state_dict()}: new handles sharing the
     * module's storage, detached from autograd. They belong to the caller (or the current
     * scope); closing them does not affect the module.
     */
    public final Map<String, Tensor> stateDict() {
        Map<String, Tensor> out = new LinkedHashMap<>();
        namedParameters().forEach((n, t) -> out.put(n, t.detach()));
        namedBuffers().forEach((n, t) -> out.put(n, t.detach()));
        return out;
    }

    /** Keys that were missing from, and unexpected in, a loaded state dict. */
    public record LoadResult(List<String> missingKeys, List<String> unexpectedKeys) {}

    /**
     * Copies tensors into the parameters and buffers of the same names, as
     * {@code load_state_dict}. Shapes must match exactly (dtypes are converted). When
     * {@code strict}, missing or unexpected keys are an error and nothing is copied.
     */
    public final LoadResult loadStateDict(Map<String, Tensor> state, boolean strict) {
        Objects.requireNonNull(state, "state");
        for (var e : state.entrySet()) {
            if (e.getValue() == null) throw new NullPointerException("state dict value of '" + e.getKey() + "' is null");
        }
        Map<String, Tensor> targets = new LinkedHashMap<>(namedParameters());
        targets.putAll(namedBuffers());
        List<String> missing = targets.keySet().stream().filter(k -> !state.containsKey(k)).toList();
        List<String> unexpected = state.keySet().stream().filter(k -> !targets.containsKey(k)).toList();
        if (strict && (!missing.isEmpty() || !unexpected.isEmpty())) {
            throw new IllegalArgumentException("state dict does not match the module: missing " + missing + ", unexpected " + unexpected);
        }
        for (var e : targets.entrySet()) {
            Tensor src = state.get(e.getKey());
            if (src != null && !Arrays.equals(src.shape(), e.getValue().shape())) {
                throw new IllegalArgumentException("'" + e.getKey() + "': shape " + Arrays.toString(src.shape())
                        + " does not match the module's " + Arrays.toString(e.getValue().shape()));
            }
        }
        try (var ng = Torch.noGrad()) {
            for (var e : targets.entrySet()) {
                Tensor src = state.get(e.getKey());
                if (src != null) e.getValue().copy_(src);
            }
        }
        return new LoadResult(missing, unexpected);
    }

    // ------------------------------------------------------------------ lifetime

    /** Frees every tensor of this module and of its children. Idempotent. */
    @Override
    public void close() {
        if (closed) return;
        closed = true;
        children.values().forEach(Module::close);
        parameters.values().forEach(t -> {
            if (t != null) t.close();
        });
        buffers.values().forEach(Tensor::close);
    }

    public final boolean isClosed() {
        return closed;
    }

    protected final void ensureOpen() {
        if (closed) throw new IllegalStateException(getClass().getSimpleName() + " is closed");
    }

    // ------------------------------------------------------------------ printing

    /** One line describing this module's settings, as PyTorch's {@code extra_repr}. */
    protected String extraRepr() {
        return "";
    }

    /** The module tree in PyTorch's format. */
    @Override
    public String toString() {
        String name = getClass().getSimpleName();
        if (children.isEmpty()) return name + "(" + extraRepr() + ")";
        StringBuilder sb = new StringBuilder(name).append("(");
        if (!extraRepr().isEmpty()) sb.append("\n  ").append(extraRepr());
        children.forEach((n, m) -> sb.append("\n  (").append(n).append("): ").append(m.toString().replace("\n", "\n  ")));
        return sb.append("\n)").toString();
    }

    // ------------------------------------------------------------------ package access

    final Map<String, Module> ownChildren() {
        return children;
    }
}
