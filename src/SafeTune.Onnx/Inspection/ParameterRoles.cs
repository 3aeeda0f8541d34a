namespace SafeTune.Onnx.Inspection;

/// <summary>What a floating-point initializer is to the model it belongs to.</summary>
/// <param name="Name">The initializer.</param>
/// <param name="IsParameter">True for a weight PyTorch would train; false for a buffer (a table or constant it never trains).</param>
/// <param name="Reason">Why, naming the node that decided it.</param>
/// <param name="Elements">The number of elements.</param>
public sealed record ParameterRole(string Name, bool IsParameter, string Reason, long Elements);

/// <summary>
/// Tells trainable parameters from buffers among a model's floating-point initializers, as PyTorch would: an exported
/// graph stores both as initializers, but only the parameters are trained.
/// <para>
/// Each initializer is followed forward through the ops that only combine it with other constants or with positions
/// (views, slices by position, casts, arithmetic with a <c>Range</c>) to the nodes where it meets the model's inputs.
/// Parameters are used there as weights: a MatMul, Gemm or Conv operand, a Gather table read by token id (an
/// embedding), the scale or bias of a normalization (a normalization op, or the Mul and Add after a decomposed RMSNorm or
/// LayerNorm), a bias added after a MatMul, or any other use no buffer rule claims. Buffers only feed positional or
/// masking arithmetic: an ancestor of Cos or Sin (rotary frequencies, <c>inv_freq</c>), a table multiplied into
/// activations in <c>x * cos + rotate_half(x) * sin</c> or indexed by position and multiplied in (rotary cos/sin
/// tables), values added to attention scores that feed a Softmax (additive masks) or chosen by a Where (mask fill
/// values), single-value constants, and tensors that never meet the inputs at all.
/// </para>
/// </summary>
public static class ParameterRoles
{
    private static readonly HashSet<string> WeightOps = ["MatMul", "Gemm", "Conv", "ConvTranspose", "Einsum"];
    private static readonly HashSet<string> NormOps =
        ["LayerNormalization", "BatchNormalization", "InstanceNormalization", "GroupNormalization", "RMSNormalization",
         "SimplifiedLayerNormalization", "SkipLayerNormalization", "SkipSimplifiedLayerNormalization"];
    private static readonly HashSet<string> Views =
        ["Reshape", "Transpose", "Unsqueeze", "Squeeze", "Cast", "Identity", "Expand", "Flatten", "Slice"];
    private static readonly HashSet<string> MaskPath =
        ["Add", "Where", "Mul", "Div", "Reshape", "Cast", "Slice", "Expand", "Unsqueeze", "Squeeze", "Transpose", "Max", "Min", "Identity"];

    /// <summary>The role of every floating-point initializer of the main graph, in initializer order.</summary>
    public static IReadOnlyList<ParameterRole> Of(Model model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var data = DataDependence(model.Graph);
        return [.. model.Graph.Initializers.Where(v => v.Initializer!.ElementType.IsFloatingPoint()).Select(v => Classify(v, data))];
    }

    /// <summary>The names of the parameters (the initializers PyTorch would train), in initializer order.</summary>
    public static IReadOnlyList<string> Parameters(Model model) => [.. Of(model).Where(r => r.IsParameter).Select(r => r.Name)];

    private readonly record struct Meeting(Node Node, int Slot, bool ByPosition);

    private static ParameterRole Classify(Value init, HashSet<Value> data)
    {
        long elements = init.Initializer!.ElementCount;
        var meetings = new List<Meeting>();
        string? trig = null;
        var seen = new HashSet<Value>();
        var queue = new Queue<(Value Value, bool ByPosition)>();
        queue.Enqueue((init, false));
        while (queue.Count > 0)
        {
            var (v, byPosition) = queue.Dequeue();
            if (!seen.Add(v)) continue;
            foreach (var use in v.Uses)
            {
                var n = use.Node;
                if (n.Domain.Length == 0 && n.OpType is "Cos" or "Sin") { trig ??= n.Describe(); continue; }
                bool meets = n.Inputs.Any(x => x is not null && data.Contains(x)) || n.HasSubgraphs;
                if (meets) { meetings.Add(new Meeting(n, use.InputIndex, byPosition)); continue; }
                // Indexed by computed positions: a Slice or Gather of this tensor whose bounds or indices are not constants.
                bool indexed = byPosition || n.OpType is "Slice" or "Gather" && use.InputIndex == 0
                    && n.Inputs.Skip(1).Any(x => x is not null && x.ConstantData is null);
                foreach (var o in n.Outputs) queue.Enqueue((o, indexed));
            }
        }
        if (trig is not null) return new(init.Name, false, $"rotary frequencies: feeds {trig}", elements);
        var verdicts = meetings.Select(m => Judge(m, data)).ToList();
        var weight = verdicts.Where(v => v.IsParameter).Select(v => v.Reason).Distinct().ToList();
        bool scalar = elements == 1 && !meetings.Any(m => WeightOps.Contains(m.Node.OpType) || m.Node.OpType == "Gather" || NormOps.Contains(m.Node.OpType));
        if (scalar) return new(init.Name, false, "single-value constant", elements);
        if (weight.Count > 0) return new(init.Name, true, string.Join("; ", weight.Take(2)) + (weight.Count > 2 ? $"; +{weight.Count - 2} more" : ""), elements);
        if (verdicts.Count > 0) return new(init.Name, false, verdicts[0].Reason, elements);
        return new(init.Name, false, "never meets the model's inputs (constant arithmetic only)", elements);
    }

    private static (bool IsParameter, string Reason) Judge(Meeting m, HashSet<Value> data)
    {
        var n = m.Node;
        string what = n.Describe();
        if (n.Domain is not ("" or "com.microsoft")) return (true, $"read by {what}");
        if (WeightOps.Contains(n.OpType)) return (true, $"weight of {what}");
        if (NormOps.Contains(n.OpType) && m.Slot >= 1) return (true, $"scale or bias of {what}");
        switch (n.OpType)
        {
            case "Gather" when m.Slot == 0:
                if (IsRotaryFactor(n, data, out var rotary)) return (false, $"rotary table gathered by position, multiplied in by {rotary}");
                return (true, $"embedding table of {what}");
            case "Mul":
                if (IsNormalized(Other(n, m.Slot))) return (true, $"normalization scale ({what})");
                if (IsRotaryFactor(n, data, out _)) return (false, $"rotary table: x * cos + rotate_half(x) * sin at {what}");
                if (m.ByPosition) return (false, $"table indexed by position, multiplied into activations by {what}");
                if (FeedsSoftmax(n, out var softmax)) return (false, $"mask multiplied into scores that feed {softmax}");
                return (true, $"multiplies activations ({what})");
            case "Add" or "Sub":
                if (IsLinearOutput(Other(n, m.Slot))) return (true, $"bias added after a MatMul ({what})");
                if (Other(n, m.Slot) is { Producer: { OpType: "Mul" } mul } && mul.Inputs.Any(x => x is not null && IsNormalized(x)))
                    return (true, $"normalization bias ({what})");
                if (FeedsSoftmax(n, out var sm)) return (false, $"additive mask: added to scores that feed {sm}");
                return (true, $"added to activations ({what})");
            case "Where" when m.Slot >= 1:
                return (false, $"mask fill value of {what}");
            default:
                return (true, $"read by {what}");
        }
    }

    private static Value? Other(Node n, int slot) => n.Inputs.Where((x, i) => i != slot && x is not null).FirstOrDefault();

    private static Value Through(Value v, params string[] ops)
    {
        while (v.Producer is { } p && ops.Contains(p.OpType) && p.Inputs.Count > 0 && p.Inputs[0] is { } inner) v = inner;
        return v;
    }

    /// <summary>A normalized activation: x / sqrt(...) or x * reciprocal(sqrt(...)) with a ReduceMean close behind.</summary>
    private static bool IsNormalized(Value? v)
    {
        if (v is null) return false;
        v = Through(v, "Cast", "Identity");
        if (v.Producer is not { OpType: "Mul" or "Div" } p) return false;
        return p.Inputs.Any(x => x is not null && ReducesNearby(x, 5));
    }

    private static bool ReducesNearby(Value v, int depth)
    {
        if (v.Producer is not { } p || depth == 0) return false;
        if (p.OpType is "ReduceMean" or "ReduceSumSquare" or "ReduceL2") return true;
        if (p.OpType is not ("Reciprocal" or "Sqrt" or "Add" or "Div" or "Pow" or "Cast" or "Mul" or "Max" or "Clip")) return false;
        return p.Inputs.Any(x => x is not null && ReducesNearby(x, depth - 1));
    }

    /// <summary>The output of a MatMul or Gemm with a constant (weight) operand, seen through views.</summary>
    private static bool IsLinearOutput(Value? v)
    {
        if (v is null) return false;
        v = Through(v, "Reshape", "Transpose", "Cast", "Identity", "Squeeze", "Unsqueeze");
        return v.Producer is { OpType: "MatMul" or "Gemm" } p && p.Inputs.Any(x => x is not null && IsConstantDerived(x, 4));
    }

    private static bool IsConstantDerived(Value v, int depth) =>
        v.IsInitializer && !v.IsGraphInput || v.Producer is { } p && depth > 0 && Views.Contains(p.OpType) && p.Inputs[0] is { } x && IsConstantDerived(x, depth - 1);

    /// <summary>
    /// A rotary factor: the node's output (seen through views) is a Mul that is half of <c>x * c + y * s</c>, the other
    /// half a Mul of activations by another constant table.
    /// </summary>
    private static bool IsRotaryFactor(Node n, HashSet<Value> data, out string where)
    {
        where = "";
        var mul = n;
        for (int hop = 0; mul.OpType != "Mul"; hop++)
        {
            if (hop > 4 || mul.Outputs[0].Consumers.Take(2).ToList() is not [var next] || !(Views.Contains(next.OpType) || next.OpType == "Mul")) return false;
            mul = next;
        }
        foreach (var combine in mul.Outputs[0].Consumers.Where(c => c.OpType is "Add" or "Sub"))
        {
            var partner = combine.Inputs.FirstOrDefault(x => x is not null && x != mul.Outputs[0])?.Producer;
            if (partner is { OpType: "Mul" } && partner != mul
                && partner.Inputs.Any(x => x is not null && data.Contains(x)) && partner.Inputs.Any(x => x is not null && !data.Contains(x)))
            {
                where = mul.Describe();
                return true;
            }
        }
        return false;
    }

    /// <summary>The node's output reaches a Softmax through mask arithmetic (adds, fills, scaling, views) within a few hops.</summary>
    private static bool FeedsSoftmax(Node n, out string softmax)
    {
        softmax = "";
        var frontier = new List<Node> { n };
        for (int hop = 0; hop < 4 && frontier.Count > 0; hop++)
        {
            var next = new List<Node>();
            foreach (var c in frontier.SelectMany(f => f.Outputs).SelectMany(o => o.Consumers))
            {
                if (c.OpType is "Softmax" or "LogSoftmax") { softmax = c.Describe(); return true; }
                if (MaskPath.Contains(c.OpType)) next.Add(c);
            }
            frontier = next;
        }
        return false;
    }

    /// <summary>
    /// The values that depend on what the model is given: graph inputs (other than positions: integer inputs named
    /// <c>*position*</c>) and everything computed from them, except through Shape and Size, which read only shapes.
    /// </summary>
    private static HashSet<Value> DataDependence(Graph g)
    {
        var data = new HashSet<Value>(g.Inputs.Where(v => !v.IsInitializer
            && !(v.ElementType.IsInteger() && v.Name.Contains("position", StringComparison.OrdinalIgnoreCase))));
        foreach (var n in g.TopologicalOrder())
        {
            if (n.OpType is "Shape" or "Size") continue;
            if (Graph.NodeReads(n).Any(data.Contains)) data.UnionWith(n.Outputs);
        }
        return data;
    }
}
