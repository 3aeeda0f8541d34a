using SafeTune.Autodiff.Rules;
using SafeTune.Onnx;
using SafeTune.Onnx.Shapes;

namespace SafeTune.Autodiff;

/// <summary>Options for <see cref="BackwardBuilder"/>.</summary>
public sealed record BackwardOptions
{
    /// <summary>How embedding gradients accumulate repeated indices.</summary>
    public EmbeddingGradient EmbeddingGradient { get; init; } = EmbeddingGradient.ScatterAdd;

    /// <summary>Keep the forward graph's own outputs (e.g. logits) beside the loss and the gradients.</summary>
    public bool KeepForwardOutputs { get; init; } = true;

    /// <summary>
    /// Activation checkpoints: values of the forward graph (the residual stream after each transformer block, in order)
    /// that are the only activations kept for the backward pass. The nodes between two consecutive checkpoints are
    /// computed again in the backward pass, from the earlier checkpoint, once the gradient of the later one is known, and
    /// their gradient rules read those copies, so the forward pass frees a block's activations as soon as the next block
    /// has read them: activation memory no longer grows with depth, for one more forward pass of time. Null or fewer than
    /// two: no recomputation.
    /// </summary>
    public IReadOnlyList<string>? Checkpoints { get; init; }

    /// <summary>
    /// Frozen weights stored in 16 bits (float16 or bfloat16 initializers, read through a <c>Cast</c> to float32, see
    /// <see cref="SafeTune.Onnx.Passes.SixteenBitWeights"/>): a gradient rule that reads a value computed from such
    /// weights alone reads a copy computed again from the 16-bit weights once the gradient it is used with exists. The
    /// float32 copy the forward pass made is then freed right after the forward pass used it, instead of living until
    /// the backward pass: float32 copies of the weights exist only while an op reads them.
    /// </summary>
    public bool RecastStoredWeights { get; init; } = true;
}

/// <summary>A training graph: the forward graph, the loss, and one gradient output per parameter.</summary>
public sealed class BackwardResult
{
    internal BackwardResult(Model model, string loss, IReadOnlyList<string> parameters, IReadOnlyDictionary<string, TensorData> initialValues)
    {
        Model = model;
        LossName = loss;
        Parameters = parameters;
        InitialValues = initialValues;
    }

    /// <summary>The training model. Parameters are graph inputs (not initializers), so their values are supplied per run.</summary>
    public Model Model { get; }

    /// <summary>The loss output.</summary>
    public string LossName { get; }

    /// <summary>The parameters, in order.</summary>
    public IReadOnlyList<string> Parameters { get; }

    /// <summary>The parameters' values as they were initializers of the forward model.</summary>
    public IReadOnlyDictionary<string, TensorData> InitialValues { get; }

    /// <summary>The gradient output of a parameter: <c>&lt;name&gt;_grad</c>.</summary>
    public static string GradientName(string parameter) => parameter + "_grad";
}

/// <summary>Ops on a parameter-to-loss path that have no gradient rule. The message lists every one.</summary>
public sealed class MissingGradientException(IReadOnlyList<(string OpType, string Node, string Parameter)> missing)
    : Exception("no gradient rule for: " + string.Join("; ", missing.GroupBy(m => m.OpType).Select(g =>
        $"{g.Key} (nodes {string.Join(", ", g.Select(m => $"'{m.Node}'").Distinct().Take(5))}{(g.Count() > 5 ? ", ..." : "")}; needed by parameter '{g.First().Parameter}')")))
{
    /// <summary>Each op type, node and a parameter whose gradient needed it.</summary>
    public IReadOnlyList<(string OpType, string Node, string Parameter)> Missing { get; } = missing;
}

/// <summary>
/// Symbolic reverse-mode differentiation of an ONNX graph into standard ai.onnx ops. Only nodes on a path from a
/// parameter to the loss are differentiated; gradients of values that fan out are accumulated with Sum; parameter
/// gradients are outputs named <c>&lt;parameter&gt;_grad</c>; the parameters become graph inputs.
/// </summary>
public static class BackwardBuilder
{
    /// <summary>Builds the training graph of <paramref name="forward"/> (which is not modified).</summary>
    public static BackwardResult Build(Model forward, string loss, IEnumerable<string> parameters, BackwardOptions? options = null)
    {
        options ??= new BackwardOptions();
        var model = forward.Clone("training graph");
        if (model.DefaultOpset < 13)
            throw new GradientException($"opset {model.DefaultOpset} is too old: differentiation needs ai.onnx opset 13 or newer.");
        ShapeInference.Run(model);
        var g = model.Graph;
        var lossValue = g.FindValue(loss) ?? throw new GradientException($"the graph has no value named '{loss}' to differentiate.");
        var paramValues = parameters.Select(p => g.FindInitializer(p)
            ?? throw new GradientException($"parameter '{p}' is not an initializer of the graph.")).ToList();
        foreach (var p in paramValues)
            if (!p.ElementType.IsFloatingPoint()) throw new GradientException($"parameter '{p.Name}' is {p.ElementType.OnnxName()}, not a floating-point tensor.");

        var order = g.TopologicalOrder();
        var depends = DependsOnParameters(order, paramValues);
        var needed = NeededForLoss(order, depends, lossValue);

        // Every op on a parameter-to-loss path needs a rule: report all of them at once.
        var missing = OnPaths(order, needed).Where(n => GradientRegistry.Find(n.Domain, n.OpType) is null)
            .Select(n => (n.OpType, NodeLabel(n), UpstreamParameter(n, paramValues))).ToList();
        if (missing.Count > 0) throw new MissingGradientException(missing);

        var contributions = new Dictionary<Value, List<Value>>(ReferenceEqualityComparer.Instance);
        var builder = new GraphBuilder(g, model.DefaultOpset);
        contributions[lossValue] = [Seed(builder, lossValue)];
        var recast = options.RecastStoredWeights ? Recaster.For(builder, order, paramValues) : null;
        var segments = Segments(g, order, options.Checkpoints);
        var recomputed = new Dictionary<Node, Node>(ReferenceEqualityComparer.Instance);

        for (int k = order.Count - 1; k >= 0; k--)
        {
            var node = order[k];
            if (!node.Outputs.Any(o => contributions.ContainsKey(o))) continue;
            var need = node.Inputs.Select(i => i is not null && needed.Contains(i)).ToArray();
            if (!need.Any(x => x)) continue;
            var rule = GradientRegistry.Find(node.Domain, node.OpType)!;
            if (segments.TryGetValue(node, out var segment) && !recomputed.ContainsKey(node))
                Recompute(builder, segment, contributions, recomputed, recast);
            using var scope = builder.Scope("grad/" + node.Name.TrimStart('/'));
            var go = node.Outputs.Select(o => contributions.TryGetValue(o, out var list) ? Accumulate(builder, o, list) : null).ToArray();
            var source = recomputed.GetValueOrDefault(node, node);
            if (recast is not null && go.FirstOrDefault(v => v is not null) is { } gate) source = recast.Shadow(source, gate);
            var ctx = new GradientContext(source, builder, go, need, options);
            rule.Build(ctx);
            for (int i = 0; i < need.Length; i++)
            {
                if (!need[i]) continue;
                var gi = ctx.GetGI(i) ?? throw new GradientException($"the {node.OpType} rule gave no gradient for input {i} of {node.Describe()}.");
                var input = node.Inputs[i]!;
                if (!contributions.TryGetValue(input, out var list)) contributions[input] = list = [];
                list.Add(gi);
            }
        }
        var initial = new Dictionary<string, TensorData>(StringComparer.Ordinal);
        foreach (var p in paramValues)
        {
            var name = BackwardResult.GradientName(p.Name);
            var grad = contributions.TryGetValue(p, out var list)
                ? Accumulate(builder, p, list)
                : builder.Op("ConstantOfShape", [builder.ShapeOf(p)], Onnx.Attribute.Of("value", SplitGrad.ZeroTensor(p.ElementType)));
            if (grad.IsGraphOutput || grad.IsGraphInput || grad.Name.EndsWith("_grad", StringComparison.Ordinal) && grad.Name != name)
                grad = builder.Identity(grad);
            g.RenameValue(grad, name);
            grad.ElementType = p.ElementType;
            grad.Shape = p.Shape;
            initial[p.Name] = g.PromoteInitializerToInput(p);
        }
        RemoveUnusedCopies(g, recast is null ? recomputed.Values : recomputed.Values.Concat(recast.Added));
        var outputs = new List<Value> { lossValue };
        if (options.KeepForwardOutputs) outputs.AddRange(g.Outputs.Where(o => !ReferenceEquals(o, lossValue)));
        outputs.AddRange(paramValues.Select(p => g.GetValue(BackwardResult.GradientName(p.Name))));
        foreach (var o in g.Outputs.ToList()) g.RemoveOutput(o);
        foreach (var o in outputs) g.AddOutput(o);
        g.SortTopologically();
        ShapeInference.Run(model);
        return new BackwardResult(model, lossValue.Name, [.. paramValues.Select(p => p.Name)], initial);
    }

    /// <summary>
    /// The nodes on a path from a parameter (by default every float initializer) to any graph output whose op has no
    /// gradient rule: what would stop <see cref="Build"/>.
    /// </summary>
    public static IReadOnlyList<(string OpType, string Node)> FindNonDifferentiable(Model model, IEnumerable<string>? parameters = null)
    {
        var g = model.Graph;
        var order = g.TopologicalOrder();
        var paramValues = parameters?.Select(g.GetValue).ToList()
            ?? [.. g.Initializers.Where(v => v.Initializer!.ElementType.IsFloatingPoint())];
        var depends = DependsOnParameters(order, paramValues);
        var needed = new HashSet<Value>(ReferenceEqualityComparer.Instance);
        foreach (var o in g.Outputs) needed.UnionWith(NeededForLoss(order, depends, o));
        return [.. OnPaths(order, needed).Where(n => GradientRegistry.Find(n.Domain, n.OpType) is null).Select(n => (n.OpType, NodeLabel(n)))];
    }

    /// <summary>A stretch of the forward graph between two checkpoints, recomputed in the backward pass.</summary>
    private sealed record Segment(Value Start, Value End, List<Node> Nodes);

    /// <summary>
    /// The segments between consecutive checkpoints: the nodes that read (through any path) the earlier checkpoint and
    /// that the later one needs, in forward order. Segments with subgraphs are left alone.
    /// </summary>
    private static Dictionary<Node, Segment> Segments(Graph g, IReadOnlyList<Node> order, IReadOnlyList<string>? checkpoints)
    {
        var result = new Dictionary<Node, Segment>(ReferenceEqualityComparer.Instance);
        if (checkpoints is null || checkpoints.Count < 2) return result;
        var position = new Dictionary<Node, int>(ReferenceEqualityComparer.Instance);
        for (int i = 0; i < order.Count; i++) position[order[i]] = i;
        var values = checkpoints.Select(name => g.FindValue(name) ?? throw new GradientException($"the activation checkpoint '{name}' is not a value of the graph."))
            .Where(v => v.Producer is not null).OrderBy(v => position[v.Producer!]).ToList();
        for (int c = 1; c < values.Count; c++)
        {
            var (start, end) = (values[c - 1], values[c]);
            // Descendants of start, in order, up to end's producer; then keep the ancestors of end among them.
            var after = new HashSet<Value>([start], ReferenceEqualityComparer.Instance);
            var reads = new List<Node>();
            for (int i = position[start.Producer!] + 1; i <= position[end.Producer!]; i++)
            {
                var n = order[i];
                if (!Graph.NodeReads(n).Any(after.Contains)) continue;
                reads.Add(n);
                foreach (var o in n.Outputs) after.Add(o);
            }
            var wanted = new HashSet<Value>([end], ReferenceEqualityComparer.Instance);
            var nodes = new List<Node>();
            for (int i = reads.Count - 1; i >= 0; i--)
            {
                var n = reads[i];
                if (!n.Outputs.Any(wanted.Contains)) continue;
                nodes.Add(n);
                foreach (var v in Graph.NodeReads(n)) wanted.Add(v);
            }
            nodes.Reverse();
            if (nodes.Count == 0 || nodes.Any(n => n.HasSubgraphs)) continue;
            var segment = new Segment(start, end, nodes);
            foreach (var n in nodes) result.TryAdd(n, segment);
        }
        return result;
    }

    /// <summary>
    /// Copies a segment's nodes, reading the segment's start through <c>Expand(start, Shape(d end))</c>: the same values,
    /// but computed only once the gradient of the segment's end exists, so that every topological order (ONNX Runtime's
    /// included) runs the copies in the backward pass.
    /// </summary>
    private static void Recompute(GraphBuilder b, Segment segment, Dictionary<Value, List<Value>> contributions, Dictionary<Node, Node> copies, Recaster? recast)
    {
        if (!contributions.TryGetValue(segment.End, out var endGrads)) return;
        using var scope = b.Scope("recompute" + segment.End.Producer!.Name);
        var gradient = Accumulate(b, segment.End, endGrads);
        var start = b.Expand(segment.Start, b.ShapeOf(gradient));
        start.ElementType = segment.Start.ElementType;
        start.Shape = segment.Start.Shape;
        var map = new Dictionary<Value, Value>(ReferenceEqualityComparer.Instance) { [segment.Start] = start };
        foreach (var n in segment.Nodes)
        {
            var copy = CopyNode(b.Graph, n, n.Inputs.Select(i => i is null ? null
                : map.TryGetValue(i, out var mapped) ? mapped : recast is not null && recast.Reads(i) ? recast.Copy(i, gradient, map) : i), "_recomputed");
            for (int i = 0; i < n.Outputs.Count; i++) map[n.Outputs[i]] = copy.Outputs[i];
            copies[n] = copy;
        }
    }

    /// <summary>
    /// A copy of <paramref name="node"/> reading <paramref name="inputs"/>: the same op and attributes, its outputs named
    /// after the node's with <paramref name="suffix"/> and typed and shaped as they are.
    /// </summary>
    internal static Node CopyNode(Graph g, Node node, IEnumerable<Value?> inputs, string suffix)
    {
        var copy = g.AddNode(node.OpType, inputs, [.. node.Outputs.Select(o => o.Name + suffix)], node.Attributes.Values,
            g.Names.NewNodeName(node.Name + suffix), node.Domain);
        for (int i = 0; i < node.Outputs.Count; i++)
        {
            copy.Outputs[i].ElementType = node.Outputs[i].ElementType;
            copy.Outputs[i].Shape = node.Outputs[i].Shape;
        }
        return copy;
    }

    /// <summary>Removes the recomputed nodes that no gradient rule read.</summary>
    private static void RemoveUnusedCopies(Graph g, IEnumerable<Node> copies)
    {
        var pending = copies.ToList();
        bool removed = true;
        while (removed)
        {
            removed = false;
            for (int i = pending.Count - 1; i >= 0; i--)
            {
                var n = pending[i];
                if (n.Outputs.Any(o => o.Uses.Count > 0 || o.IsGraphOutput)) continue;
                g.RemoveNode(n);
                pending.RemoveAt(i);
                removed = true;
            }
        }
    }

    /// <summary>Nodes that read a needed value and produce one: the nodes a gradient passes through.</summary>
    private static IEnumerable<Node> OnPaths(IReadOnlyList<Node> order, HashSet<Value> needed) =>
        order.Where(n => n.Inputs.Any(i => i is not null && needed.Contains(i)) && n.Outputs.Any(needed.Contains));

    private static string NodeLabel(Node n) => n.Name.Length > 0 ? n.Name : n.Outputs[0].Name;

    private static HashSet<Value> DependsOnParameters(IReadOnlyList<Node> order, IEnumerable<Value> parameters)
    {
        var depends = new HashSet<Value>(parameters, ReferenceEqualityComparer.Instance);
        foreach (var n in order)
        {
            if (GradientRegistry.HasNoGradient(n.Domain, n.OpType)) continue;
            if (!Graph.NodeReads(n).Any(depends.Contains)) continue;
            foreach (var o in n.Outputs)
                if (o.ElementType.IsFloatingPoint() || o.ElementType == ElementType.Undefined) depends.Add(o);
        }
        return depends;
    }

    private static HashSet<Value> NeededForLoss(IReadOnlyList<Node> order, HashSet<Value> depends, Value loss)
    {
        var needed = new HashSet<Value>(ReferenceEqualityComparer.Instance);
        if (depends.Contains(loss)) needed.Add(loss);
        for (int k = order.Count - 1; k >= 0; k--)
        {
            var n = order[k];
            if (!n.Outputs.Any(needed.Contains)) continue;
            foreach (var i in n.Inputs)
                if (i is not null && depends.Contains(i)) needed.Add(i);
        }
        return needed;
    }

    private static Value Seed(GraphBuilder b, Value loss)
    {
        using var _ = b.Scope("grad");
        var value = loss.ElementType == ElementType.Double ? TensorData.Vector("value", 1.0) : TensorData.Vector("value", 1f);
        var seed = loss.Shape is { Rank: 0 }
            ? b.Constant(loss.ElementType == ElementType.Double ? TensorData.Scalar("one", 1.0) : TensorData.Scalar("one", 1f))
            : b.Op("ConstantOfShape", [b.ShapeOf(loss)], Onnx.Attribute.Of("value", value));
        return seed;
    }

    private static Value Accumulate(GraphBuilder b, Value forward, List<Value> parts)
    {
        if (parts.Count == 1) return parts[0];
        var sum = b.Op("Sum", [.. parts]);
        if (!b.Graph.Names.IsValueNameTaken(forward.Name + "_grad")) b.Graph.RenameValue(sum, forward.Name + "_grad");
        sum.ElementType = forward.ElementType;
        sum.Shape = forward.Shape;
        parts.Clear();
        parts.Add(sum);
        return sum;
    }

    private static string UpstreamParameter(Node node, IReadOnlyList<Value> parameters)
    {
        var set = new HashSet<Value>(parameters, ReferenceEqualityComparer.Instance);
        var seen = new HashSet<Value>(ReferenceEqualityComparer.Instance);
        var stack = new Stack<Value>(node.Inputs.OfType<Value>());
        while (stack.TryPop(out var v))
        {
            if (!seen.Add(v)) continue;
            if (set.Contains(v)) return v.Name;
            if (v.Producer is { } p) foreach (var i in p.Inputs) if (i is not null) stack.Push(i);
        }
        return "?";
    }
}
