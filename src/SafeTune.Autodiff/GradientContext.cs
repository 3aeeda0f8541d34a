using SafeTune.Onnx;

namespace SafeTune.Autodiff;

/// <summary>
/// What a gradient rule sees of one forward node: its inputs <see cref="I"/>, outputs <see cref="O"/>, the gradients
/// flowing into its outputs <see cref="GO"/>, and which input gradients are wanted (<see cref="NeedGI"/>). A rule writes
/// each wanted input gradient with <see cref="SetGI"/>, using <see cref="B"/> to emit standard ops.
/// </summary>
public sealed class GradientContext
{
    private readonly Value?[] _go;
    private readonly bool[] _need;
    private readonly Value?[] _gi;

    internal GradientContext(Node node, GraphBuilder builder, Value?[] go, bool[] need, BackwardOptions options)
    {
        Node = node;
        B = builder;
        _go = go;
        _need = need;
        _gi = new Value?[node.Inputs.Count];
        Options = options;
    }

    /// <summary>The forward node.</summary>
    public Node Node { get; }

    /// <summary>The builder for gradient nodes (scoped under the forward node's name).</summary>
    public GraphBuilder B { get; }

    /// <summary>Options of the backward build.</summary>
    public BackwardOptions Options { get; }

    /// <summary>The default-domain opset emitted ops must be valid at.</summary>
    public long Opset => B.Opset;

    /// <summary>Forward input <paramref name="i"/>.</summary>
    public Value I(int i) => Node.Input(i) ?? throw new InvalidOperationException($"{Node.Describe()} has no input {i}.");

    /// <summary>Forward input <paramref name="i"/>, or null when omitted.</summary>
    public Value? OptionalI(int i) => Node.Input(i);

    /// <summary>Forward output <paramref name="i"/>.</summary>
    public Value O(int i) => Node.Outputs[i];

    /// <summary>The gradient flowing into output <paramref name="i"/>, or null when none does.</summary>
    public Value? GO(int i) => i < _go.Length ? _go[i] : null;

    /// <summary>True when the gradient of input <paramref name="i"/> is wanted.</summary>
    public bool NeedGI(int i) => i < _need.Length && _need[i];

    /// <summary>Sets the gradient of input <paramref name="i"/>.</summary>
    public void SetGI(int i, Value gradient)
    {
        if (NeedGI(i)) _gi[i] = gradient;
    }

    internal Value? GetGI(int i) => _gi[i];

    /// <summary>
    /// Makes sure optional output <paramref name="i"/> of the forward node exists (e.g. LayerNormalization's Mean and
    /// InvStdDev, Dropout's mask), adding it to the node when the exporter omitted it, and returns it.
    /// </summary>
    public Value EnsureOutput(int i, ElementType type)
    {
        while (Node.Outputs.Count <= i)
        {
            var v = Node.Graph.CreateValue($"{(Node.Name.Length > 0 ? Node.Name : Node.OpType)}_output_{Node.Outputs.Count}", type);
            Node.AddOutput(v);
        }
        return Node.Outputs[i];
    }

    /// <summary>An int attribute of the forward node.</summary>
    public long Attr(string name, long fallback) => Node.GetInt(name, fallback);

    /// <summary>A float attribute of the forward node.</summary>
    public float Attr(string name, float fallback) => Node.GetFloat(name, fallback);

    /// <summary>The rank of a value, or an error naming it when shape inference could not tell.</summary>
    public int RankOf(Value v) => v.Shape?.Rank
        ?? throw new GradientException($"{Node.Describe()}: the rank of '{v.Name}' is not known, so its gradient cannot be built.");

    /// <summary>Normalizes a possibly negative axis against a rank.</summary>
    public static long NormalizeAxis(long axis, int rank) => axis < 0 ? axis + rank : axis;

    /// <summary>Constant int64 values of an input (axes, shapes), or an error naming the input.</summary>
    public long[] ConstantInts(Value v) =>
        v.ConstantData?.ToInt64s() ?? throw new GradientException($"{Node.Describe()}: input '{v.Name}' must be a constant to differentiate this node.");

    /// <summary>A scalar 0 of <paramref name="like"/>'s element type.</summary>
    public Value Zero(Value like) => B.Constant(TypedScalar(like.ElementType, 0));

    /// <summary>A scalar of <paramref name="like"/>'s element type.</summary>
    public Value ScalarLike(Value like, double value) => B.Constant(TypedScalar(like.ElementType, value));

    private static TensorData TypedScalar(ElementType t, double v) => t switch
    {
        ElementType.Double => TensorData.Scalar("c", v),
        ElementType.Float16 => TensorData.Scalar("c", (Half)v),
        _ => TensorData.Scalar("c", (float)v),
    };

    /// <summary>
    /// Sums a broadcast gradient back to the shape of <paramref name="x"/> (numpy broadcasting). Axes that are statically
    /// known to be broadcast are summed with constant axes; when a dim is not known statically, the axes are computed at
    /// run time (NonZero over the padded shape) so dynamic shapes stay exact.
    /// </summary>
    public Value ReduceToShape(Value g, Value x, Shape? gShape)
    {
        var xs = x.Shape;
        if (xs is null || gShape is null)
            throw new GradientException($"{Node.Describe()}: cannot reduce the gradient to the shape of '{x.Name}': its rank is not known.");
        if (xs.Rank == gShape.Rank && Enumerable.Range(0, xs.Rank).All(i => xs[i].SameAs(gShape[i]) || (xs[i].Value is > 1)))
            return g;
        int lead = gShape.Rank - xs.Rank;
        var axes = new List<long>();
        bool dynamic = false;
        for (int i = 0; i < gShape.Rank; i++)
        {
            if (i < lead) { axes.Add(i); continue; }
            var xd = xs[i - lead];
            var gd = gShape[i];
            if (xd.Value == 1) { if (gd.Value != 1) axes.Add(i); }
            else if (xd.Value is > 1 || xd.SameAs(gd)) continue;
            else dynamic = true;
        }
        Value reduced;
        if (!dynamic)
        {
            if (axes.Count == 0) return xs.Rank == gShape.Rank ? g : B.Reshape(g, B.ShapeOf(x));
            reduced = B.ReduceSum(g, [.. axes], keepDims: true);
        }
        else
        {
            if (Opset < 13) throw new GradientException($"{Node.Describe()}: dynamic broadcasting needs opset 13 or newer.");
            // Sum over every axis where the (left-padded) shape of x is 1.
            var padded = lead == 0 ? B.ShapeOf(x) : B.Concat(0, B.Ints([.. Enumerable.Repeat(1L, lead)]), B.ShapeOf(x));
            var axesValue = B.Reshape(B.Op("NonZero", B.Equal(padded, B.Ints(1))), -1);
            reduced = B.Op("ReduceSum", [g, axesValue], Onnx.Attribute.Of("keepdims", 1L), Onnx.Attribute.Of("noop_with_empty_axes", 1L));
        }
        return B.Reshape(reduced, B.ShapeOf(x));
    }

    /// <summary>Reduces to the shape of input <paramref name="i"/> a gradient shaped like output 0.</summary>
    public Value ReduceToInput(Value g, int i) => ReduceToShape(g, I(i), O(0).Shape);
}

/// <summary>A gradient could not be built; the message names the op, node and tensor.</summary>
public sealed class GradientException(string message) : Exception(message);
