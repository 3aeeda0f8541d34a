using SafeTune.Onnx.Passes;

namespace SafeTune.Onnx.Inspection;

/// <summary>A tensor's name, element type and shape as shown to users.</summary>
public sealed record TensorSignature(string Name, string ElementType, IReadOnlyList<object> Shape);

/// <summary>A hidden-state tensor found for one transformer block.</summary>
public sealed record HiddenStateInfo(int Layer, string Tensor, IReadOnlyList<object>? Shape);

/// <summary>What SafeTune can tell about a model without running it.</summary>
public sealed record ModelSummary
{
    /// <summary>The ONNX IR version.</summary>
    public required long IrVersion { get; init; }
    /// <summary>Imported operator sets, keyed by domain (<c>ai.onnx</c> for the default domain).</summary>
    public required IReadOnlyDictionary<string, long> Opsets { get; init; }
    /// <summary>The producing tool and its version.</summary>
    public required string Producer { get; init; }
    /// <summary>Graph inputs that are not initializers.</summary>
    public required IReadOnlyList<TensorSignature> Inputs { get; init; }
    /// <summary>Graph outputs.</summary>
    public required IReadOnlyList<TensorSignature> Outputs { get; init; }
    /// <summary>Node count per op type in the main graph, most frequent first.</summary>
    public required IReadOnlyDictionary<string, int> Ops { get; init; }
    /// <summary>Total elements of floating-point initializers.</summary>
    public required long Parameters { get; init; }
    /// <summary>The number of initializers.</summary>
    public required int Initializers { get; init; }
    /// <summary>One hidden-state tensor per transformer block, in layer order.</summary>
    public required IReadOnlyList<HiddenStateInfo> HiddenStates { get; init; }

    /// <summary>Every floating-point initializer: parameter or buffer, with the reason (see <see cref="ParameterRoles"/>).</summary>
    public IReadOnlyList<ParameterRole> Roles { get; init; } = [];
    /// <summary>Parameters stored twice (a tied weight's copy, as is or transposed), which training re-ties.</summary>
    public IReadOnlyList<TiedCopy> Ties { get; init; } = [];

    /// <summary>Op types on a path from a parameter to an output that have no gradient rule (filled in by the caller that knows the rules).</summary>
    public IReadOnlyList<string> NonDifferentiable { get; init; } = [];

    /// <summary>Summarizes a model. Shape inference runs on it (filling in types and shapes) but the graph is not otherwise changed.</summary>
    public static ModelSummary Of(Model model)
    {
        var g = model.Graph;
        var ops = g.Nodes.GroupBy(n => n.OpType, StringComparer.Ordinal)
            .OrderByDescending(x => x.Count()).ThenBy(x => x.Key, StringComparer.Ordinal)
            .ToDictionary(x => x.Key, x => x.Count(), StringComparer.Ordinal);
        var opsets = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var (d, v) in model.Opsets) opsets[d.Length == 0 ? "ai.onnx" : d] = v;
        var hidden = HiddenStateLocator.Locate(model);
        var roles = ParameterRoles.Of(model);
        return new ModelSummary
        {
            IrVersion = model.IrVersion,
            Opsets = opsets,
            Producer = (model.ProducerName + " " + model.ProducerVersion).Trim(),
            Inputs = [.. g.Inputs.Where(v => !v.IsInitializer).Select(Signature)],
            Outputs = [.. g.Outputs.Select(Signature)],
            Ops = ops,
            Parameters = g.Initializers.Where(v => v.Initializer!.ElementType.IsFloatingPoint()).Sum(v => v.Initializer!.ElementCount),
            Initializers = g.Initializers.Count(),
            HiddenStates = [.. hidden.Select(h => new HiddenStateInfo(h.Layer, h.Tensor.Name, h.Shape is null ? null : ShapeList(h.Shape)))],
            Roles = roles,
            Ties = TiedCopies.Find(model, roles.Where(r => r.IsParameter).Select(r => r.Name)),
        };
    }

    private static TensorSignature Signature(Value v) =>
        new(v.Name, v.NonTensorType is not null ? "non-tensor" : v.ElementType.OnnxName(), v.Shape is null ? [] : ShapeList(v.Shape));

    /// <summary>A shape as JSON-friendly items: numbers for known sizes, strings for symbols, null for unknown dims.</summary>
    public static IReadOnlyList<object> ShapeList(Shape s) => [.. s.Dims.Select(d => d.Value is { } n ? (object)n : d.Param ?? (object)"?")];
}
