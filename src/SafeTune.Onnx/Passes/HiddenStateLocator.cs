using System.Text.RegularExpressions;
using SafeTune.Onnx.Shapes;

namespace SafeTune.Onnx.Passes;

/// <summary>One transformer block's output on the residual stream.</summary>
/// <param name="Layer">The block index, from 0.</param>
/// <param name="Tensor">The value holding the block's output, shaped <c>[batch, sequence, width]</c>.</param>
/// <param name="Shape">The value's inferred shape, when known.</param>
public sealed record HiddenStateCandidate(int Layer, Value Tensor, Shape? Shape);

/// <summary>
/// Finds the residual stream after each transformer block, in graphs exported by torch.onnx or Hugging Face Optimum,
/// and in graphs SafeTune builds.
/// <para>
/// The stream is found by structure: starting from the token embedding, the values that every path to the model's output
/// passes through (its dominators) form the spine. A spine value made by an Add of two computed operands is a residual
/// merge; merges whose branch holds attention open a block. Layer numbers come from node names
/// (<c>/model/layers.3/...</c>, <c>/transformer/h.3/...</c>, <c>/encoder/layer.3/...</c>) when the exporter kept them.
/// Both pre-norm (GPT-2, Llama) and post-norm (BERT) blocks are handled: a block's output is the stream value the next
/// block reads.
/// </para>
/// </summary>
public static partial class HiddenStateLocator
{
    private static readonly HashSet<string> AttentionOps = ["Softmax", "Attention", "MultiHeadAttention", "GroupQueryAttention", "PackedAttention"];

    [GeneratedRegex(@"(?:^|[/._])(?:layers|layer|h|blocks|block)[./_](\d+)(?:[/._]|$)", RegexOptions.IgnoreCase)]
    private static partial Regex LayerPattern();

    /// <summary>Locates one hidden-state tensor per transformer block; empty when the graph has no recognisable blocks.</summary>
    public static IReadOnlyList<HiddenStateCandidate> Locate(Model model) => Locate(model, out _);

    /// <summary>
    /// Locates one hidden-state tensor per transformer block, and <paramref name="streamInput"/>: the stream value the
    /// first block reads (the embeddings), null when the blocks were found by names alone.
    /// </summary>
    public static IReadOnlyList<HiddenStateCandidate> Locate(Model model, out Value? streamInput)
    {
        streamInput = null;
        ShapeInference.Run(model);
        var graph = model.Graph;
        var order = graph.TopologicalOrder();
        var (source, width) = FindSource(graph);
        if (source is null) return LocateByNames(order, width);
        var sink = FindSink(graph, source);
        if (sink is null) return LocateByNames(order, width);

        var relevant = Relevant(order, source, sink);
        var (idom, spine) = Spine(order, source, sink, relevant);
        var spineIndex = new Dictionary<Value, int>(ReferenceEqualityComparer.Instance);
        for (int i = 0; i < spine.Count; i++) spineIndex[spine[i]] = i;

        // Residual merges: spine values made by Add/Sum from two or more computed operands.
        var merges = new List<(Value merge, Value skip, bool attention, int? layer)>();
        foreach (var v in spine)
        {
            if (v.Producer is not { Domain: "" } p || p.OpType is not ("Add" or "Sum")) continue;
            if (p.Inputs.Count(i => i is not null && relevant.Contains(i)) < 2) continue;
            var skip = idom[v]!;
            merges.Add((v, skip, BranchHasAttention(p, skip, relevant), LayerOf(p)));
        }
        if (merges.Count == 0) return LocateByNames(order, width);

        // Group merges into blocks: by layer names when every merge has one, else a block opens at each attention merge.
        var blocks = new List<List<(Value merge, Value skip, bool attention, int? layer)>>();
        bool byNames = merges.All(m => m.layer is not null);
        bool anyAttention = merges.Any(m => m.attention);
        foreach (var m in merges)
        {
            bool open = blocks.Count == 0
                || (byNames ? m.layer != blocks[^1][0].layer : anyAttention ? m.attention : true);
            if (open) blocks.Add([]);
            blocks[^1].Add(m);
        }

        streamInput = blocks[0][0].skip;

        // Spine steps from a merge to the stream value the next merge reads: 0 for pre-norm blocks, the length of the
        // normalization for post-norm ones. Measured on the last pair of consecutive merges, so one block is enough.
        int hops = merges.Count > 1 ? Math.Max(0, spineIndex[merges[^1].skip] - spineIndex[merges[^2].merge]) : 0;
        var result = new List<HiddenStateCandidate>();
        for (int b = 0; b < blocks.Count; b++)
        {
            var last = blocks[b][^1].merge;
            Value output;
            if (b + 1 < blocks.Count) output = blocks[b + 1][0].skip;
            else
            {
                int at = spineIndex[last] + hops;
                output = at < spine.Count && HasWidth(spine[at], width) ? spine[at] : last;
            }
            // Layers are numbered from 0 in graph order; names only group merges into blocks.
            result.Add(new HiddenStateCandidate(b, output, output.Shape));
        }
        return result;
    }

    private static (Value? source, Dim width) FindSource(Graph graph)
    {
        // The token embedding: a Gather from a float matrix initializer, indexed by (something computed from) an integer graph input.
        Value? best = null;
        long bestSize = -1;
        Dim width = Dim.Unknown;
        foreach (var n in graph.Nodes)
        {
            if (n is not { OpType: "Gather", Domain: "" } || n.Input(0) is not { IsInitializer: true } table) continue;
            var data = table.Initializer!;
            if (!data.ElementType.IsFloatingPoint() || data.Dims.Length != 2) continue;
            if (!DependsOnGraphInput(n.Input(1))) continue;
            if (data.ElementCount > bestSize) { best = n.Outputs[0]; bestSize = data.ElementCount; width = Dim.Of(data.Dims[1]); }
        }
        if (best is not null) return (best, width);
        var embeds = graph.Inputs.FirstOrDefault(v => !v.IsInitializer && v.ElementType.IsFloatingPoint() && v.Shape?.Rank == 3);
        return (embeds, embeds?.Shape?[-1] ?? Dim.Unknown);
    }

    private static bool DependsOnGraphInput(Value? v)
    {
        var seen = new HashSet<Value>(ReferenceEqualityComparer.Instance);
        var stack = new Stack<Value>();
        if (v is not null) stack.Push(v);
        while (stack.TryPop(out var x))
        {
            if (!seen.Add(x)) continue;
            if (x.IsGraphInput && !x.IsInitializer) return true;
            if (x.Producer is { } p) foreach (var i in p.Inputs) if (i is not null) stack.Push(i);
        }
        return false;
    }

    private static Value? FindSink(Graph graph, Value source)
    {
        var reach = Forward(graph.TopologicalOrder(), source);
        var outputs = graph.Outputs.Where(reach.Contains).ToList();
        return outputs.FirstOrDefault(o => o.Name is "logits" or "last_hidden_state")
            ?? outputs.FirstOrDefault(o => o.ElementType.IsFloatingPoint() && o.Shape?.Rank >= 3)
            ?? outputs.FirstOrDefault();
    }

    private static HashSet<Value> Forward(IReadOnlyList<Node> order, Value source)
    {
        var reach = new HashSet<Value>(ReferenceEqualityComparer.Instance) { source };
        foreach (var n in order)
        {
            if (n.OpType is "Shape" or "Size") continue;
            if (!n.Inputs.Any(i => i is not null && reach.Contains(i))) continue;
            foreach (var o in n.Outputs)
                if (o.ElementType.IsFloatingPoint() || o.ElementType == ElementType.Undefined) reach.Add(o);
        }
        return reach;
    }

    /// <summary>Values on some float data path from the source to the sink.</summary>
    private static HashSet<Value> Relevant(IReadOnlyList<Node> order, Value source, Value sink)
    {
        var forward = Forward(order, source);
        var relevant = new HashSet<Value>(ReferenceEqualityComparer.Instance) { sink };
        for (int k = order.Count - 1; k >= 0; k--)
        {
            var n = order[k];
            if (!n.Outputs.Any(relevant.Contains)) continue;
            if (n.OpType is "Shape" or "Size") continue;
            foreach (var i in n.Inputs) if (i is not null && forward.Contains(i)) relevant.Add(i);
        }
        relevant.IntersectWith(forward);
        return relevant;
    }

    private static (Dictionary<Value, Value?> idom, List<Value> spine) Spine(IReadOnlyList<Node> order, Value source, Value sink, HashSet<Value> relevant)
    {
        var idom = new Dictionary<Value, Value?>(ReferenceEqualityComparer.Instance) { [source] = null };
        var depth = new Dictionary<Value, int>(ReferenceEqualityComparer.Instance) { [source] = 0 };
        foreach (var n in order)
        {
            var preds = n.Inputs.Where(i => i is not null && relevant.Contains(i) && idom.ContainsKey(i)).Distinct().ToList();
            if (preds.Count == 0) continue;
            foreach (var o in n.Outputs)
            {
                if (!relevant.Contains(o) || idom.ContainsKey(o)) continue;
                // A node is a join point: the output's immediate dominator is the nearest common dominator of its inputs,
                // or the single input itself.
                Value d = preds[0]!;
                foreach (var p in preds.Skip(1)) d = CommonDominator(d, p!, idom, depth);
                idom[o] = d;
                depth[o] = depth[d] + 1;
            }
        }
        var spine = new List<Value>();
        for (Value? v = idom.ContainsKey(sink) ? sink : null; v is not null; v = idom[v]) spine.Add(v);
        spine.Reverse();
        return (idom, spine);
    }

    private static Value CommonDominator(Value a, Value b, Dictionary<Value, Value?> idom, Dictionary<Value, int> depth)
    {
        while (!ReferenceEquals(a, b))
        {
            if (depth[a] >= depth[b]) a = idom[a]!;
            else b = idom[b]!;
        }
        return a;
    }

    private static bool BranchHasAttention(Node merge, Value skip, HashSet<Value> relevant)
    {
        var seen = new HashSet<Node>(ReferenceEqualityComparer.Instance);
        var stack = new Stack<Node>();
        stack.Push(merge);
        while (stack.TryPop(out var n))
        {
            if (!seen.Add(n)) continue;
            if (!ReferenceEquals(n, merge) && AttentionOps.Contains(n.OpType)) return true;
            foreach (var i in n.Inputs)
                if (i is not null && !ReferenceEquals(i, skip) && relevant.Contains(i) && i.Producer is { } p) stack.Push(p);
        }
        return false;
    }

    private static int? LayerOf(Node n)
    {
        var m = LayerPattern().Match(n.Name);
        return m.Success && int.TryParse(m.Groups[1].Value, out var i) ? i : null;
    }

    private static bool HasWidth(Value v, Dim width) =>
        v.Shape is null || width.IsUnknown || (v.Shape.Rank >= 2 && (v.Shape[-1].IsUnknown || v.Shape[-1].SameAs(width)));

    private static IReadOnlyList<HiddenStateCandidate> LocateByNames(IReadOnlyList<Node> order, Dim width)
    {
        var last = new SortedDictionary<int, Value>();
        foreach (var n in order)
        {
            if (LayerOf(n) is not { } layer) continue;
            foreach (var o in n.Outputs)
                if (o.ElementType.IsFloatingPoint() && o.Shape is { Rank: 3 } s && (width.IsUnknown || s[-1].SameAs(width)))
                    last[layer] = o;
        }
        return [.. last.Select(kv => new HiddenStateCandidate(kv.Key, kv.Value, kv.Value.Shape))];
    }
}
