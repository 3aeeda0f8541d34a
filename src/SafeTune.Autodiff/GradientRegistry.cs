using SafeTune.Autodiff.Rules;

namespace SafeTune.Autodiff;

/// <summary>
/// The single table of gradient rules, keyed by (domain, op type). Ops whose outputs carry no gradient (shape
/// computations, comparisons, integer producers) are registered explicitly as such.
/// </summary>
public static class GradientRegistry
{
    private static readonly Dictionary<(string Domain, string Op), IGradientRule> Rules = new()
    {
        [("", "Add")] = new AddGrad(),
        [("", "Sub")] = new SubGrad(),
        [("", "Mul")] = new MulGrad(),
        [("", "Div")] = new DivGrad(),
        [("", "Pow")] = new PowGrad(),
        [("", "Sum")] = new SumGrad(),
        [("", "Mean")] = new MeanGrad(),
        [("", "Where")] = new WhereGrad(),
        [("", "Identity")] = UnaryGrad.Identity,
        [("", "Neg")] = UnaryGrad.Neg,
        [("", "Exp")] = UnaryGrad.Exp,
        [("", "Log")] = UnaryGrad.Log,
        [("", "Sqrt")] = UnaryGrad.Sqrt,
        [("", "Reciprocal")] = UnaryGrad.Reciprocal,
        [("", "Tanh")] = UnaryGrad.Tanh,
        [("", "Sigmoid")] = UnaryGrad.Sigmoid,
        [("", "Relu")] = UnaryGrad.Relu,
        [("", "Erf")] = UnaryGrad.Erf,
        [("", "Sin")] = UnaryGrad.Sin,
        [("", "Cos")] = UnaryGrad.Cos,
        [("", "Abs")] = UnaryGrad.Abs,
        [("", "Cast")] = UnaryGrad.Cast,
        [("", "Expand")] = UnaryGrad.Expand,
        [("", "Reshape")] = UnaryGrad.ReshapeLike,
        [("", "Squeeze")] = UnaryGrad.ReshapeLike,
        [("", "Unsqueeze")] = UnaryGrad.ReshapeLike,
        [("", "Flatten")] = UnaryGrad.ReshapeLike,
        [("", "Softmax")] = new SoftmaxGrad(),
        [("", "LogSoftmax")] = new LogSoftmaxGrad(),
        [("", "LayerNormalization")] = new LayerNormalizationGrad(),
        [("", "ReduceSum")] = new ReduceGrad(mean: false),
        [("", "ReduceMean")] = new ReduceGrad(mean: true),
        [("", "MatMul")] = new MatMulGrad(),
        [("", "Gemm")] = new GemmGrad(),
        [("", "Transpose")] = new TransposeGrad(),
        [("", "Concat")] = new ConcatGrad(),
        [("", "Split")] = new SplitGrad(),
        [("", "Slice")] = new SliceGrad(),
        [("", "Gather")] = new GatherGrad(),
        [("", "GatherElements")] = new GatherElementsGrad(),
        [("", "Dropout")] = new DropoutGrad(),
        [(Losses.FusedResponseHead.Domain, Losses.FusedResponseHead.OpType)] = new Losses.ResponseHeadLossGrad(),
    };

    /// <summary>Ops whose outputs are treated as constants by differentiation.</summary>
    private static readonly HashSet<(string Domain, string Op)> NoGradient =
    [
        ("", "Shape"), ("", "Size"), ("", "Equal"), ("", "Less"), ("", "LessOrEqual"), ("", "Greater"), ("", "GreaterOrEqual"),
        ("", "Not"), ("", "And"), ("", "Or"), ("", "Xor"), ("", "Range"), ("", "ConstantOfShape"), ("", "Constant"),
        ("", "NonZero"), ("", "ArgMax"), ("", "ArgMin"), ("", "OneHot"), ("", "EyeLike"), ("", "IsNaN"), ("", "IsInf"),
        ("", "Sign"), ("", "Floor"), ("", "Ceil"), ("", "Round"), ("", "RandomNormal"), ("", "RandomUniform"),
        ("", "RandomNormalLike"), ("", "RandomUniformLike"), ("", "Bernoulli"), ("", "Multinomial"), ("", "TopK"),
    ];

    /// <summary>The rule for an op, or null when none is registered.</summary>
    public static IGradientRule? Find(string domain, string opType) =>
        Rules.TryGetValue((Normalize(domain), opType), out var r) ? r : null;

    /// <summary>True when the op is registered as having no gradient.</summary>
    public static bool HasNoGradient(string domain, string opType) => NoGradient.Contains((Normalize(domain), opType));

    /// <summary>The op types with a gradient rule.</summary>
    public static IEnumerable<string> Differentiable => Rules.Keys.Select(k => k.Op).Order(StringComparer.Ordinal);

    private static string Normalize(string domain) => domain == "ai.onnx" ? "" : domain;
}
