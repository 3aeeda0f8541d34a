namespace SafeTune.Onnx.Shapes;

/// <summary>
/// Propagates element types and shapes through a graph, including symbolic dims such as <c>[batch, sequence, 384]</c>.
/// Small integer tensors that describe shapes (Shape, Gather, Concat, ... chains in exported transformers) are evaluated
/// symbolically, so that Reshape and Expand targets built at run time still give known shapes.
/// </summary>
public static class ShapeInference
{
    /// <summary>Infers types and shapes of every node output in the model (and its subgraphs' nodes where possible).</summary>
    /// <returns>True when any value's type or shape changed.</returns>
    public static bool Run(Model model)
    {
        var ctx = new InferenceContext(model.DefaultOpset);
        return RunGraph(model.Graph, ctx);
    }

    /// <summary>Infers types and shapes, returning the symbolic contents of small integer tensors found on the way.</summary>
    public static IReadOnlyDictionary<Value, Dim[]> RunWithKnownValues(Model model)
    {
        var ctx = new InferenceContext(model.DefaultOpset);
        RunGraph(model.Graph, ctx);
        return ctx.Known;
    }

    private static bool RunGraph(Graph graph, InferenceContext ctx)
    {
        bool changed = false;
        foreach (var v in graph.Initializers)
            if (v.Initializer is { } t && (t.ElementType.IsInteger()) && t.ElementCount <= InferenceContext.MaxKnownElements)
                ctx.Known[v] = [.. t.ToInt64s().Select(Dim.Of)];
        foreach (var node in graph.TopologicalOrder())
        {
            InferredOutput[] outs;
            try { outs = OpShapes.Infer(node, ctx); }
            catch (Exception e) when (e is ArgumentException or UserInputException or InvalidOperationException or IndexOutOfRangeException or OverflowException)
            { outs = []; }
            for (int i = 0; i < node.Outputs.Count && i < outs.Length; i++)
                changed |= Merge(node.Outputs[i], outs[i]);
            foreach (var a in node.Attributes.Values)
            {
                if (a.Graph is not null) changed |= RunGraph(a.Graph, ctx);
                foreach (var g in a.Graphs) changed |= RunGraph(g, ctx);
            }
        }
        return changed;
    }

    private static bool Merge(Value v, InferredOutput inferred)
    {
        bool changed = false;
        if (v.ElementType == ElementType.Undefined && inferred.Type != ElementType.Undefined)
        {
            v.ElementType = inferred.Type;
            changed = true;
        }
        if (inferred.Shape is null) return changed;
        if (v.Shape is null || v.Shape.Rank != inferred.Shape.Rank)
        {
            v.Shape = inferred.Shape;
            return true;
        }
        var dims = new Dim[v.Shape.Rank];
        for (int i = 0; i < dims.Length; i++)
        {
            Dim old = v.Shape[i], inf = inferred.Shape[i];
            // A known size beats a symbol; an inferred symbol beats an exporter's generated name or an unknown.
            dims[i] = old.Value is not null ? old : inf.Value is not null ? inf : !inf.IsUnknown ? inf : old;
        }
        var merged = new Shape(dims);
        if (merged.Equals(v.Shape)) return changed;
        v.Shape = merged;
        return true;
    }
}

/// <summary>The type and shape inferred for one output.</summary>
public readonly record struct InferredOutput(ElementType Type, Shape? Shape);

/// <summary>State shared while inferring one model: the opset and the symbolic contents of small integer tensors.</summary>
public sealed class InferenceContext(long opset)
{
    /// <summary>Integer tensors up to this many elements are tracked symbolically.</summary>
    public const int MaxKnownElements = 64;

    /// <summary>The default-domain opset.</summary>
    public long Opset { get; } = opset;

    /// <summary>Symbolic contents of small integer tensors, flattened.</summary>
    public Dictionary<Value, Dim[]> Known { get; } = new(ReferenceEqualityComparer.Instance);

    /// <summary>The symbolic contents of an input, if known.</summary>
    public Dim[]? KnownOf(Value? v)
    {
        if (v is null) return null;
        if (Known.TryGetValue(v, out var d)) return d;
        if (v.ConstantData is { } t && (t.ElementType.IsInteger() || t.ElementType == ElementType.Bool) && t.ElementCount <= MaxKnownElements)
            return Known[v] = [.. t.ToInt64s().Select(Dim.Of)];
        return null;
    }

    /// <summary>The known integer contents of an input, if every element is a known number.</summary>
    public long[]? IntsOf(Value? v) => KnownOf(v) is { } d && d.All(x => x.Value is not null) ? [.. d.Select(x => x.Value!.Value)] : null;
}
