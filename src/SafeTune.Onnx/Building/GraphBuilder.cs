namespace SafeTune.Onnx;

/// <summary>
/// Writes graphs in code, one <c>Make</c>-style helper per primitive. Node names are hierarchical
/// (<c>/model/layers.3/attn/q_proj/MatMul</c>) through <see cref="Scope"/>, and every op is emitted in the form valid at
/// <see cref="Opset"/> (axes as inputs from opset 13 for ReduceSum, Unsqueeze, Squeeze and Split, from 18 for the other reductions).
/// </summary>
public sealed class GraphBuilder
{
    private readonly List<string> _scopes = [];
    private readonly Shapes.InferenceContext _inference;

    /// <summary>Creates a builder that appends to <paramref name="graph"/> at the given default-domain opset.</summary>
    public GraphBuilder(Graph graph, long opset)
    {
        Graph = graph;
        Opset = opset;
        _inference = new Shapes.InferenceContext(opset);
    }

    /// <summary>Creates a builder for a new, empty model (IR 8, the given opset).</summary>
    public static GraphBuilder ForNewModel(long opset = 17, string graphName = "main")
    {
        var model = new Model(new Graph(graphName)) { IrVersion = opset >= 21 ? 10 : 8 };
        model.Opsets[""] = opset;
        return new GraphBuilder(model.Graph, opset) { Model = model };
    }

    /// <summary>The model, when the builder was made by <see cref="ForNewModel"/>.</summary>
    public Model? Model { get; private init; }

    /// <summary>The graph being written.</summary>
    public Graph Graph { get; }

    /// <summary>The default-domain opset the emitted nodes must be valid at.</summary>
    public long Opset { get; }

    /// <summary>The current scope path, e.g. <c>/model/layers.0/attn</c>.</summary>
    public string CurrentScope => "/" + string.Join('/', _scopes);

    /// <summary>Enters a naming scope until the returned handle is disposed.</summary>
    public IDisposable Scope(string name)
    {
        _scopes.Add(name);
        return new ScopeHandle(this);
    }

    private sealed class ScopeHandle(GraphBuilder b) : IDisposable
    {
        private bool _done;
        public void Dispose()
        {
            if (_done) return;
            _done = true;
            b._scopes.RemoveAt(b._scopes.Count - 1);
        }
    }

    /// <summary>Adds a graph input.</summary>
    public Value Input(string name, ElementType type, params Dim[] dims) => Graph.AddInput(name, type, new Shape(dims));

    /// <summary>Marks <paramref name="value"/> as a graph output, renaming it to <paramref name="name"/> when given.</summary>
    public Value Output(Value value, string? name = null)
    {
        if (name is not null) Graph.RenameValue(value, name);
        Graph.AddOutput(value);
        return value;
    }

    /// <summary>Adds an initializer under the tensor's own name (a weight).</summary>
    public Value Parameter(TensorData data) => Graph.AddInitializer(data);

    /// <summary>Adds a float32 weight.</summary>
    public Value Parameter(string name, float[] values, params long[] dims) => Graph.AddInitializer(TensorData.Create<float>(name, dims, values));

    /// <summary>Adds a Constant node holding <paramref name="data"/>.</summary>
    public Value Constant(TensorData data)
    {
        var node = NewNode("Constant", [], 1);
        node.Set(Attribute.Of("value", data.WithName(node.Outputs[0].Name)));
        node.Outputs[0].ElementType = data.ElementType;
        node.Outputs[0].Shape = data.Shape;
        return node.Outputs[0];
    }

    /// <summary>A 1-D int64 constant.</summary>
    public Value Ints(params long[] values) => Constant(TensorData.Vector("c", values));

    /// <summary>A scalar float constant.</summary>
    public Value Scalar(float value) => Constant(TensorData.Scalar("c", value));

    /// <summary>A scalar int64 constant.</summary>
    public Value ScalarInt(long value) => Constant(TensorData.Scalar("c", value));

    /// <summary>Appends a node named after the current scope and returns it.</summary>
    public Node NewNode(string opType, IEnumerable<Value?> inputs, int outputCount = 1, IEnumerable<Attribute>? attributes = null, string domain = "")
    {
        var name = Graph.Names.NewNodeName($"{(_scopes.Count == 0 ? "" : CurrentScope)}/{opType}");
        var outputs = Enumerable.Range(0, outputCount).Select(i => $"{name}_output_{i}").ToArray();
        var node = Graph.AddNode(opType, inputs, outputs, attributes, name, domain);
        Infer(node);
        return node;
    }

    /// <summary>
    /// Gives a new node's outputs their element types and shapes at once, so that later helpers (and gradient rules)
    /// can rely on them: constants of the right type, reductions to known shapes.
    /// </summary>
    private void Infer(Node node)
    {
        Shapes.InferredOutput[] outs;
        try { outs = Shapes.OpShapes.Infer(node, _inference); }
        catch (Exception e) when (e is ArgumentException or UserInputException or InvalidOperationException or IndexOutOfRangeException or OverflowException)
        { return; }
        for (int i = 0; i < outs.Length && i < node.Outputs.Count; i++)
        {
            var o = node.Outputs[i];
            if (o.ElementType == ElementType.Undefined) o.ElementType = outs[i].Type;
            o.Shape ??= outs[i].Shape;
        }
    }

    /// <summary>Appends a single-output node and returns its output.</summary>
    public Value Op(string opType, IEnumerable<Value?> inputs, params Attribute[] attributes) =>
        NewNode(opType, inputs, 1, attributes).Outputs[0];

    /// <summary>Appends a single-output node without attributes.</summary>
    public Value Op(string opType, params Value?[] inputs) => NewNode(opType, inputs).Outputs[0];

    // ---- elementwise and linear algebra ----------------------------------------------------------------------------

    /// <summary>Matrix product (numpy semantics).</summary>
    public Value MatMul(Value a, Value b) => Op("MatMul", a, b);
    /// <summary>a + b.</summary>
    public Value Add(Value a, Value b) => Op("Add", a, b);
    /// <summary>a - b.</summary>
    public Value Sub(Value a, Value b) => Op("Sub", a, b);
    /// <summary>a * b.</summary>
    public Value Mul(Value a, Value b) => Op("Mul", a, b);
    /// <summary>a / b.</summary>
    public Value Div(Value a, Value b) => Op("Div", a, b);
    /// <summary>a ^ b.</summary>
    public Value Pow(Value a, Value b) => Op("Pow", a, b);
    /// <summary>Square root.</summary>
    public Value Sqrt(Value x) => Op("Sqrt", x);
    /// <summary>1 / x.</summary>
    public Value Reciprocal(Value x) => Op("Reciprocal", x);
    /// <summary>-x.</summary>
    public Value Neg(Value x) => Op("Neg", x);
    /// <summary>e^x.</summary>
    public Value Exp(Value x) => Op("Exp", x);
    /// <summary>Natural log.</summary>
    public Value Log(Value x) => Op("Log", x);
    /// <summary>Error function.</summary>
    public Value Erf(Value x) => Op("Erf", x);
    /// <summary>Hyperbolic tangent, elementwise.</summary>
    public Value Tanh(Value x) => Op("Tanh", x);
    /// <summary>Logistic sigmoid.</summary>
    public Value Sigmoid(Value x) => Op("Sigmoid", x);
    /// <summary>max(x, 0).</summary>
    public Value Relu(Value x) => Op("Relu", x);
    /// <summary>Cosine.</summary>
    public Value Cos(Value x) => Op("Cos", x);
    /// <summary>Sine.</summary>
    public Value Sin(Value x) => Op("Sin", x);
    /// <summary>A copy of <paramref name="x"/> under a new name.</summary>
    public Value Identity(Value x) => Op("Identity", x);
    /// <summary>Elementwise equality.</summary>
    public Value Equal(Value a, Value b) => Op("Equal", a, b);
    /// <summary>Select: cond ? x : y.</summary>
    public Value Where(Value cond, Value x, Value y) => Op("Where", cond, x, y);

    /// <summary>General matrix multiply: alpha * A' * B' + beta * C.</summary>
    public Value Gemm(Value a, Value b, Value? c = null, bool transA = false, bool transB = false, float alpha = 1, float beta = 1) =>
        Op("Gemm", [a, b, c], Attribute.Of("transA", transA ? 1L : 0L), Attribute.Of("transB", transB ? 1L : 0L),
            Attribute.Of("alpha", alpha), Attribute.Of("beta", beta));

    /// <summary>Softmax along <paramref name="axis"/>.</summary>
    public Value Softmax(Value x, long axis = -1) => Op("Softmax", [x], Attribute.Of("axis", axis));

    /// <summary>Log-softmax along <paramref name="axis"/>.</summary>
    public Value LogSoftmax(Value x, long axis = -1) => Op("LogSoftmax", [x], Attribute.Of("axis", axis));

    /// <summary>Casts to another element type.</summary>
    public Value Cast(Value x, ElementType to) => Op("Cast", [x], Attribute.Of("to", (long)to));

    // ---- reductions --------------------------------------------------------------------------------------------------

    /// <summary>Mean over <paramref name="axes"/>.</summary>
    public Value ReduceMean(Value x, long[] axes, bool keepDims = true) => Reduce("ReduceMean", x, axes, keepDims, axesAsInputFrom: 18);

    /// <summary>Sum over <paramref name="axes"/>.</summary>
    public Value ReduceSum(Value x, long[] axes, bool keepDims = true) => Reduce("ReduceSum", x, axes, keepDims, axesAsInputFrom: 13);

    /// <summary>Max over <paramref name="axes"/>.</summary>
    public Value ReduceMax(Value x, long[] axes, bool keepDims = true) => Reduce("ReduceMax", x, axes, keepDims, axesAsInputFrom: 18);

    private Value Reduce(string op, Value x, long[] axes, bool keepDims, long axesAsInputFrom) => Opset >= axesAsInputFrom
        ? Op(op, [x, Ints(axes)], Attribute.Of("keepdims", keepDims ? 1L : 0L))
        : Op(op, [x], Attribute.Of("axes", axes), Attribute.Of("keepdims", keepDims ? 1L : 0L));

    // ---- shape ops ---------------------------------------------------------------------------------------------------

    /// <summary>Reshape to a constant target (0 copies a dim, -1 infers one).</summary>
    public Value Reshape(Value x, params long[] shape) => Op("Reshape", x, Ints(shape));

    /// <summary>Reshape to a target computed in the graph.</summary>
    public Value Reshape(Value x, Value shape) => Op("Reshape", x, shape);

    /// <summary>Permutes dims.</summary>
    public Value Transpose(Value x, params long[] perm) => Op("Transpose", [x], Attribute.Of("perm", perm));

    /// <summary>Inserts size-1 dims.</summary>
    public Value Unsqueeze(Value x, params long[] axes) =>
        Opset >= 13 ? Op("Unsqueeze", x, Ints(axes)) : Op("Unsqueeze", [x], Attribute.Of("axes", axes));

    /// <summary>Removes size-1 dims.</summary>
    public Value Squeeze(Value x, params long[] axes) =>
        Opset >= 13 ? Op("Squeeze", x, Ints(axes)) : Op("Squeeze", [x], Attribute.Of("axes", axes));

    /// <summary>Concatenates along <paramref name="axis"/>.</summary>
    public Value Concat(long axis, params Value[] values) => Op("Concat", values, Attribute.Of("axis", axis));

    /// <summary>Splits along <paramref name="axis"/> into pieces of the given sizes.</summary>
    public Value[] Split(Value x, long axis, params long[] sizes)
    {
        var node = Opset >= 13
            ? NewNode("Split", [x, Ints(sizes)], sizes.Length, [Attribute.Of("axis", axis)])
            : NewNode("Split", [x], sizes.Length, [Attribute.Of("axis", axis), Attribute.Of("split", sizes)]);
        return [.. node.Outputs];
    }

    /// <summary>Slices with constant starts, ends, axes and steps.</summary>
    public Value Slice(Value x, long[] starts, long[] ends, long[] axes, long[]? steps = null) =>
        Op("Slice", x, Ints(starts), Ints(ends), Ints(axes), steps is null ? null : Ints(steps));

    /// <summary>Gathers along <paramref name="axis"/>.</summary>
    public Value Gather(Value data, Value indices, long axis = 0) => Op("Gather", [data, indices], Attribute.Of("axis", axis));

    /// <summary>The shape of <paramref name="x"/> as an int64 vector.</summary>
    public Value ShapeOf(Value x) => Op("Shape", x);

    /// <summary>Broadcasts to a target shape.</summary>
    public Value Expand(Value x, Value shape) => Op("Expand", x, shape);

    /// <summary>LayerNormalization (opset 17) over the last axes from <paramref name="axis"/>; returns Y.</summary>
    public Value LayerNormalization(Value x, Value scale, Value? bias, long axis = -1, float epsilon = 1e-5f) =>
        Op("LayerNormalization", [x, scale, bias], Attribute.Of("axis", axis), Attribute.Of("epsilon", epsilon));
}
