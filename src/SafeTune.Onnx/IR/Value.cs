namespace SafeTune.Onnx;

/// <summary>One use of a value: the consuming node and the input slot.</summary>
public readonly record struct Use(Node Node, int InputIndex);

/// <summary>
/// A tensor in a graph: a graph input, an initializer, or a node output. It knows its producer and its consumers.
/// </summary>
public sealed class Value
{
    internal readonly List<Use> UsesList = [];

    internal Value(Graph graph, string name)
    {
        Graph = graph;
        Name = name;
    }

    /// <summary>The graph whose scope defines this value.</summary>
    public Graph Graph { get; }

    /// <summary>The unique name of the value.</summary>
    public string Name { get; internal set; }

    /// <summary>The element type, or <see cref="ElementType.Undefined"/> when not known.</summary>
    public ElementType ElementType { get; set; }

    /// <summary>The shape, or null when even the rank is unknown.</summary>
    public Shape? Shape { get; set; }

    /// <summary>A non-tensor type (sequence, map, optional) kept as read, or null for tensors.</summary>
    public global::Onnx.TypeProto? NonTensorType { get; set; }

    /// <summary>Documentation attached to the value.</summary>
    public string DocString { get; set; } = "";

    /// <summary>The node that produces this value, or null for graph inputs and initializers.</summary>
    public Node? Producer { get; internal set; }

    /// <summary>Which output of <see cref="Producer"/> this value is.</summary>
    public int ProducerOutputIndex { get; internal set; } = -1;

    /// <summary>Every use of the value, in the order they were made.</summary>
    public IReadOnlyList<Use> Uses => UsesList;

    /// <summary>The distinct nodes that read this value.</summary>
    public IEnumerable<Node> Consumers => UsesList.Select(u => u.Node).Distinct();

    /// <summary>The constant data when this value is an initializer, else null.</summary>
    public TensorData? Initializer { get; internal set; }

    /// <summary>True when the value is an initializer.</summary>
    public bool IsInitializer => Initializer is not null;

    /// <summary>True when the value is listed among its graph's inputs.</summary>
    public bool IsGraphInput => Graph.InputsList.Contains(this);

    /// <summary>True when the value is listed among its graph's outputs.</summary>
    public bool IsGraphOutput => Graph.OutputsList.Contains(this);

    /// <summary>
    /// The value's data when it is known without running the graph: an initializer that is not also a graph input
    /// (which a caller could override), or the output of a Constant node.
    /// </summary>
    public TensorData? ConstantData
    {
        get
        {
            if (Initializer is not null) return IsGraphInput ? null : Initializer;
            if (Producer is { OpType: "Constant", Domain: "" } c) return ConstantNodeValue(c);
            return null;
        }
    }

    private static TensorData? ConstantNodeValue(Node c)
    {
        if (c.Attributes.TryGetValue("value", out var v) && v.Tensor is { } t) return t;
        string name = c.Outputs[0].Name;
        if (c.Attributes.TryGetValue("value_float", out var f)) return TensorData.Scalar(name, f.Float);
        if (c.Attributes.TryGetValue("value_int", out var i)) return TensorData.Scalar(name, i.Int);
        if (c.Attributes.TryGetValue("value_floats", out var fs)) return TensorData.Vector(name, [.. fs.Floats]);
        if (c.Attributes.TryGetValue("value_ints", out var iss)) return TensorData.Vector(name, [.. iss.Ints]);
        return null;
    }

    /// <summary>Shape and type as text, e.g. <c>float[batch, sequence, 384]</c>.</summary>
    public string TypeString => ElementType.OnnxName() + (Shape?.ToString() ?? "[?]");

    /// <inheritdoc/>
    public override string ToString() => $"{Name}: {TypeString}";
}
