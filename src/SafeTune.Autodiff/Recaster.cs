using SafeTune.Onnx;

namespace SafeTune.Autodiff;

/// <summary>
/// Gives gradient rules their own float32 copies of weights stored in 16 bits (see
/// <see cref="BackwardOptions.RecastStoredWeights"/>): each value computed from 16-bit initializers alone (the
/// <c>Cast</c> to float32 and any view after it, such as the transpose of a tied head) is computed again from the 16-bit
/// initializer read through <c>Reshape(w, Concat(Shape(w), Slice(Shape(gate), 0, 0)))</c>. That reshape is the same
/// tensor (ONNX Runtime aliases it) but exists only once the gate, a gradient of the backward pass, does: every
/// topological order runs the copy in the backward pass, next to the rule that reads it.
/// </summary>
internal sealed class Recaster
{
    private readonly GraphBuilder _b;
    private readonly HashSet<Value> _derived;
    private readonly List<Node> _added = [];

    private Recaster(GraphBuilder b, HashSet<Value> derived)
    {
        _b = b;
        _derived = derived;
    }

    /// <summary>The nodes added for copies; those no rule read are removed at the end.</summary>
    public IEnumerable<Node> Added => _added;

    /// <summary>A recaster for the graph's 16-bit initializers, or null when it has none.</summary>
    public static Recaster? For(GraphBuilder b, IReadOnlyList<Node> order, IEnumerable<Value> parameters)
    {
        var g = b.Graph;
        var sixteen = g.Initializers.Where(v => v.ElementType is ElementType.Float16 or ElementType.BFloat16).ToList();
        if (sixteen.Count == 0) return null;
        var constant = new HashSet<Value>(g.Initializers, ReferenceEqualityComparer.Instance);
        constant.ExceptWith(parameters);
        var derived = new HashSet<Value>(sixteen, ReferenceEqualityComparer.Instance);
        foreach (var n in order)
        {
            if (n.HasSubgraphs) continue;
            var inputs = n.Inputs.OfType<Value>().ToList();
            if (!inputs.All(constant.Contains)) continue;
            foreach (var o in n.Outputs) constant.Add(o);
            if (inputs.Any(derived.Contains)) foreach (var o in n.Outputs) derived.Add(o);
        }
        return new Recaster(b, derived);
    }

    /// <summary>True when <paramref name="value"/> is computed from 16-bit weights alone (and is not one of them).</summary>
    public bool Reads(Value value) => value.Producer is not null && _derived.Contains(value);

    /// <summary>
    /// <paramref name="node"/> itself when it reads no recast value; otherwise a copy of it reading recast copies gated
    /// by <paramref name="gate"/>. The copy's own outputs are computed only if a rule reads them.
    /// </summary>
    public Node Shadow(Node node, Value gate)
    {
        if (!node.Inputs.Any(i => i is not null && Reads(i))) return node;
        if (node.HasSubgraphs) return node;
        int before = _b.Graph.Nodes.Count;
        var map = new Dictionary<Value, Value>(ReferenceEqualityComparer.Instance);
        var inputs = node.Inputs.Select(i => i is not null && Reads(i) ? Copy(i, gate, map) : i).ToList();
        var shadow = CopyNode(node, inputs);
        Track(before);
        return shadow;
    }

    /// <summary>A copy of <paramref name="value"/> computed from the 16-bit weights once <paramref name="gate"/> exists.</summary>
    public Value Copy(Value value, Value gate, Dictionary<Value, Value> map)
    {
        int before = _b.Graph.Nodes.Count;
        var copy = CopyValue(value, gate, map);
        Track(before);
        return copy;
    }

    private Value CopyValue(Value value, Value gate, Dictionary<Value, Value> map)
    {
        if (map.TryGetValue(value, out var done)) return done;
        if (value.Producer is null)
        {
            if (!_derived.Contains(value)) return value;
            // A 16-bit initializer, read once the gate exists.
            var empty = _b.Op("Slice", _b.ShapeOf(gate), _b.Ints(0), _b.Ints(0));
            var gated = _b.Reshape(value, _b.Concat(0, _b.ShapeOf(value), empty));
            gated.ElementType = value.ElementType;
            gated.Shape = value.Shape;
            return map[value] = gated;
        }
        var producer = value.Producer;
        var inputs = producer.Inputs.Select(i => i is not null && _derived.Contains(i) ? CopyValue(i, gate, map) : i).ToList();
        var copy = CopyNode(producer, inputs);
        for (int i = 0; i < producer.Outputs.Count; i++) map[producer.Outputs[i]] = copy.Outputs[i];
        return map[value];
    }

    private Node CopyNode(Node node, IEnumerable<Value?> inputs) => BackwardBuilder.CopyNode(_b.Graph, node, inputs, "_recast");

    private void Track(int before)
    {
        var nodes = _b.Graph.Nodes;
        for (int i = before; i < nodes.Count; i++) _added.Add(nodes[i]);
    }
}
