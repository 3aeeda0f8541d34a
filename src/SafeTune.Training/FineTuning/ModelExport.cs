using SafeTune.Onnx;

namespace SafeTune.Training.FineTuning;

/// <summary>The graph identity a fine-tune promises: the output model runs exactly the input model's graph.</summary>
internal static class ModelExport
{
    /// <summary>
    /// Throws <see cref="InvalidOperationException"/> unless <paramref name="output"/> has the same graph as
    /// <paramref name="input"/>: the same inputs and outputs, the same nodes (op types and names, in order) and the same
    /// initializers (names, element types and shapes). Only initializer values may differ: zero inference-time cost.
    /// </summary>
    public static void AssertSameGraph(Model input, Model output)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(output);
        string? diff = Difference(input.Graph, output.Graph);
        if (diff is not null) throw new InvalidOperationException($"the exported model's graph differs from the input model's: {diff}.");
    }

    /// <summary>The op-type histogram of a graph (top level), as <c>{op: count}</c> in op-type order.</summary>
    public static SortedDictionary<string, int> OpHistogram(Model model) =>
        new(model.Graph.Nodes.GroupBy(n => (n.Domain.Length == 0 ? "" : n.Domain + ".") + n.OpType).ToDictionary(g => g.Key, g => g.Count()), StringComparer.Ordinal);

    private static string? Difference(Graph a, Graph b)
    {
        static string Sig(Value v) => $"{v.Name}:{v.ElementType}";
        var ai = a.Inputs.Where(v => !v.IsInitializer).Select(Sig).ToList();
        var bi = b.Inputs.Where(v => !v.IsInitializer).Select(Sig).ToList();
        if (!ai.SequenceEqual(bi)) return $"inputs [{string.Join(", ", ai)}] vs [{string.Join(", ", bi)}]";
        var ao = a.Outputs.Select(Sig).ToList();
        var bo = b.Outputs.Select(Sig).ToList();
        if (!ao.SequenceEqual(bo)) return $"outputs [{string.Join(", ", ao)}] vs [{string.Join(", ", bo)}]";
        if (a.Nodes.Count != b.Nodes.Count) return $"{a.Nodes.Count} nodes vs {b.Nodes.Count}";
        for (int i = 0; i < a.Nodes.Count; i++)
        {
            Node x = a.Nodes[i], y = b.Nodes[i];
            if (x.OpType != y.OpType || x.Name != y.Name || x.Domain != y.Domain)
                return $"node {i} is {x.OpType} '{x.Name}' vs {y.OpType} '{y.Name}'";
        }
        var ainit = a.Initializers.ToDictionary(v => v.Name, v => v.Initializer!);
        var binit = b.Initializers.ToDictionary(v => v.Name, v => v.Initializer!);
        if (ainit.Count != binit.Count) return $"{ainit.Count} initializers vs {binit.Count}";
        foreach (var (name, t) in ainit)
        {
            if (!binit.TryGetValue(name, out var u)) return $"initializer '{name}' is missing";
            if (t.ElementType != u.ElementType || !t.Dims.SequenceEqual(u.Dims))
                return $"initializer '{name}' is {t.ElementType}[{string.Join(",", t.Dims)}] vs {u.ElementType}[{string.Join(",", u.Dims)}]";
        }
        return null;
    }

    /// <summary>
    /// A copy of <paramref name="target"/> (for example the key/value-cache graph of the same model) whose initializers
    /// take the values of <paramref name="source"/>'s initializers of the same name. Every float initializer of the
    /// source must exist in the target with the same shape, so no trained weight is silently left behind.
    /// </summary>
    public static Model TransplantWeights(Model source, Model target)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(target);
        var result = target.Clone("generation model");
        foreach (var v in source.Graph.Initializers)
        {
            var t = v.Initializer!;
            var slot = result.Graph.FindInitializer(v.Name);
            if (slot is null)
            {
                if (t.ElementType.IsFloatingPoint())
                    throw new InvalidDataException($"the generation model has no initializer '{v.Name}' to receive the trained weights; it must be the same model with a key/value cache.");
                continue;
            }
            if (!slot.Initializer!.Dims.SequenceEqual(t.Dims) || slot.Initializer.ElementType != t.ElementType)
                throw new InvalidDataException($"initializer '{v.Name}' is [{string.Join(",", slot.Initializer.Dims)}] in the generation model but [{string.Join(",", t.Dims)}] in the trained one.");
            result.Graph.SetInitializer(slot, t);
        }
        return result;
    }
}
