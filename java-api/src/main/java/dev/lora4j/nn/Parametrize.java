package dev.lora4j.nn;

import dev.lora4j.Tensor;
import dev.lora4j.Torch;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * Parametrizations of module parameters, as PyTorch's {@code torch.nn.utils.parametrize}.
 *
 * <p>After {@code registerParametrization(layer, "weight", p)}, the layer's forward uses
 * {@code p.forward(original)} wherever it used {@code weight}; the original moves to
 * {@code parametrizations.weight.original} and {@code p} becomes
 * {@code parametrizations.weight.0} (its parameters included in the module's), so state-dict
 * names match PyTorch's. Several parametrizations on one parameter apply in order.
 *
 * <p>Not thread-safe: change parametrizations with no forward pass running.
 */
public final class Parametrize {

    static final String CONTAINER = "parametrizations";

    private Parametrize() {}

    /** The list of parametrizations of one parameter, holding the original. */
    static final class ParametrizationList extends Module {
        ParametrizationList(Tensor original) {
            registerParameter("original", original);
        }

        Tensor original() {
            return parameter("original");
        }

        List<Parametrization> list() {
            return children().values().stream().map(m -> (Parametrization) m).toList();
        }

        @Override
        public Tensor forward(Tensor input) {
            Tensor value = input;
            for (Parametrization p : list()) {
                Tensor next = p.forward(value);
                if (value != input) value.close();
                value = next;
            }
            return value == input ? input.alias() : value;
        }
    }

    /** Holds the per-parameter lists, named like PyTorch's {@code ModuleDict}. */
    static final class Container extends Module {
        @Override
        public Tensor forward(Tensor input) {
            throw new UnsupportedOperationException("parametrizations has no forward");
        }
    }

    /**
     * Registers {@code p} on {@code module}'s parameter {@code name}. The parametrization must
     * keep the parameter's shape (checked now, as PyTorch does); on failure nothing changes.
     */
    public static void registerParametrization(Module module, String name, Parametrization p) {
        Objects.requireNonNull(module, "module");
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(p, "parametrization");
        ParametrizationList list = list(module, name);
        Tensor original = list != null ? list.original() : module.parameter(name);
        if (original == null) throw new IllegalArgumentException("parameter '" + name + "' is absent (null)");
        try (var ng = Torch.noGrad();
             Tensor current = list != null ? list.forward(original) : original.alias();
             Tensor probe = p.forward(current)) {
            if (!Arrays.equals(probe.shape(), original.shape())) {
                throw new IllegalArgumentException("a parametrization of '" + name + "' must keep its shape "
                        + Arrays.toString(original.shape()) + ", got " + Arrays.toString(probe.shape()));
            }
        }
        if (list == null) {
            module.removeParameter(name);
            Container c = module.ownChildren().containsKey(CONTAINER)
                    ? (Container) module.child(CONTAINER)
                    : module.registerModule(CONTAINER, new Container());
            list = c.registerModule(name, new ParametrizationList(original));
        }
        list.registerModule(Integer.toString(list.children().size()), p);
    }

    /** Whether {@code module}'s parameter {@code name} is parametrized. */
    public static boolean isParametrized(Module module, String name) {
        return list(module, name) != null;
    }

    /** The parametrizations on {@code module}'s parameter {@code name}, in order. */
    public static List<Parametrization> parametrizations(Module module, String name) {
        ParametrizationList list = list(module, name);
        if (list == null) throw new IllegalArgumentException("parameter '" + name + "' is not parametrized");
        return list.list();
    }

    /** The unparametrized original of {@code module}'s parameter {@code name} (owned by the module). */
    public static Tensor original(Module module, String name) {
        ParametrizationList list = list(module, name);
        if (list == null) throw new IllegalArgumentException("parameter '" + name + "' is not parametrized");
        return list.original();
    }

    /** The current value of a parametrized parameter; the caller owns it. */
    static Tensor compute(Module module, String name) {
        ParametrizationList list = list(module, name);
        return list.forward(list.original());
    }

    /**
     * Removes the parametrizations of {@code name}. With {@code leaveParametrized} the
     * parameter becomes the current computed value (the delta is kept); otherwise the original
     * comes back unchanged. The removed parametrization modules are closed.
     */
    public static void removeParametrizations(Module module, String name, boolean leaveParametrized) {
        ParametrizationList list = list(module, name);
        if (list == null) throw new IllegalArgumentException("parameter '" + name + "' is not parametrized");
        Tensor original = list.original();
        boolean requiresGrad = original.requiresGrad();
        if (leaveParametrized) {
            try (var ng = Torch.noGrad(); Tensor value = list.forward(original)) {
                original.copy_(value);
            }
        }
        list.removeParameter("original");
        Container c = (Container) module.child(CONTAINER);
        c.removeModule(name).close();
        if (c.children().isEmpty()) module.removeModule(CONTAINER).close();
        module.registerParameter(name, original);
        original.requiresGrad_(requiresGrad);
    }

    private static ParametrizationList list(Module module, String name) {
        Module c = module.ownChildren().get(CONTAINER);
        if (!(c instanceof Container container)) return null;
        Module l = container.ownChildren().get(name);
        return l instanceof ParametrizationList pl ? pl : null;
    }
}
