using SafeTune.Autodiff.Rules;
using SafeTune.Onnx;
using Xunit.Abstractions;
using Attr = SafeTune.Onnx.Attribute;

namespace SafeTune.Autodiff.Tests;

/// <summary>
/// Finite-difference checks of every gradient rule in <see cref="GradientRegistry"/>. Each data row is a case name and the
/// seed its parameters, constants and the loss weights R are drawn from.
/// </summary>
public sealed class RuleFiniteDifferenceTests(ITestOutputHelper output)
{
    public static TheoryData<string, int> Cases(string op)
    {
        var data = new TheoryData<string, int>();
        foreach (var c in FdCases.All.Where(c => c.Op == op)) data.Add(c.Name, c.Seed);
        return data;
    }

    private void Check(string op, string name, int seed)
    {
        var c = FdCases.Find(op, name);
        Assert.Equal(c.Seed, seed);
        var report = GradientCheck.Run(c);
        output.WriteLine(report.Summary());
    }

    [Fact]
    public void EveryRegisteredRuleHasCases()
    {
        var uncovered = GradientRegistry.Differentiable.Where(op => !FdCases.All.Any(c => c.Op == op)).ToList();
        Assert.True(uncovered.Count == 0, "ops with a rule but no finite-difference case: " + string.Join(", ", uncovered));
        var unknown = FdCases.All.Select(c => c.Op).Distinct().Where(op => !GradientRegistry.Differentiable.Contains(op)).ToList();
        Assert.True(unknown.Count == 0, "cases for ops without a rule: " + string.Join(", ", unknown));
    }

    [Fact]
    public void CaseNamesAndSeedsAreUnique()
    {
        Assert.Equal(FdCases.All.Count, FdCases.All.Select(c => (c.Op, c.Name)).Distinct().Count());
        Assert.Equal(FdCases.All.Count, FdCases.All.Select(c => c.Seed).Distinct().Count());
    }

    [Fact]
    public void MismatchMessageNamesOpCaseSeedToleranceParameterElementAndValues()
    {
        // Relu at exactly 0: the rule's subgradient there is 0, the central difference 1/2 (times R).
        var c = new FdCase("Relu", "kink at zero", 9001, g => g.B.Relu(g.ParamValues("X", [2, 2], 0.5, 0, -0.5, 1.0))) { Precision = ElementType.Float };
        var e = Assert.Throws<GradientCheckException>(() => GradientCheck.Run(c));
        foreach (var part in new[] { "op Relu", "case 'kink at zero'", "seed 9001", "tolerance 0.01", "parameter 'X'", "element 1 [0, 1]", "analytic 0 vs numeric" })
            Assert.Contains(part, e.Message);
    }

    [Theory, MemberData(nameof(Cases), "Add")] public void Add(string @case, int seed) => Check("Add", @case, seed);
    [Theory, MemberData(nameof(Cases), "Sub")] public void Sub(string @case, int seed) => Check("Sub", @case, seed);
    [Theory, MemberData(nameof(Cases), "Mul")] public void Mul(string @case, int seed) => Check("Mul", @case, seed);
    [Theory, MemberData(nameof(Cases), "Div")] public void Div(string @case, int seed) => Check("Div", @case, seed);
    [Theory, MemberData(nameof(Cases), "Pow")] public void Pow(string @case, int seed) => Check("Pow", @case, seed);
    [Theory, MemberData(nameof(Cases), "Sum")] public void Sum(string @case, int seed) => Check("Sum", @case, seed);
    [Theory, MemberData(nameof(Cases), "Mean")] public void Mean(string @case, int seed) => Check("Mean", @case, seed);
    [Theory, MemberData(nameof(Cases), "Where")] public void Where(string @case, int seed) => Check("Where", @case, seed);
    [Theory, MemberData(nameof(Cases), "Identity")] public void Identity(string @case, int seed) => Check("Identity", @case, seed);
    [Theory, MemberData(nameof(Cases), "Neg")] public void Neg(string @case, int seed) => Check("Neg", @case, seed);
    [Theory, MemberData(nameof(Cases), "Exp")] public void Exp(string @case, int seed) => Check("Exp", @case, seed);
    [Theory, MemberData(nameof(Cases), "Log")] public void Log(string @case, int seed) => Check("Log", @case, seed);
    [Theory, MemberData(nameof(Cases), "Sqrt")] public void Sqrt(string @case, int seed) => Check("Sqrt", @case, seed);
    [Theory, MemberData(nameof(Cases), "Reciprocal")] public void Reciprocal(string @case, int seed) => Check("Reciprocal", @case, seed);
    [Theory, MemberData(nameof(Cases), "Tanh")] public void Tanh(string @case, int seed) => Check("Tanh", @case, seed);
    [Theory, MemberData(nameof(Cases), "Sigmoid")] public void Sigmoid(string @case, int seed) => Check("Sigmoid", @case, seed);
    [Theory, MemberData(nameof(Cases), "Relu")] public void Relu(string @case, int seed) => Check("Relu", @case, seed);
    [Theory, MemberData(nameof(Cases), "Erf")] public void Erf(string @case, int seed) => Check("Erf", @case, seed);
    [Theory, MemberData(nameof(Cases), "Sin")] public void Sin(string @case, int seed) => Check("Sin", @case, seed);
    [Theory, MemberData(nameof(Cases), "Cos")] public void Cos(string @case, int seed) => Check("Cos", @case, seed);
    [Theory, MemberData(nameof(Cases), "Abs")] public void Abs(string @case, int seed) => Check("Abs", @case, seed);
    [Theory, MemberData(nameof(Cases), "Cast")] public void Cast(string @case, int seed) => Check("Cast", @case, seed);
    [Theory, MemberData(nameof(Cases), "Expand")] public void Expand(string @case, int seed) => Check("Expand", @case, seed);
    [Theory, MemberData(nameof(Cases), "Reshape")] public void Reshape(string @case, int seed) => Check("Reshape", @case, seed);
    [Theory, MemberData(nameof(Cases), "Squeeze")] public void Squeeze(string @case, int seed) => Check("Squeeze", @case, seed);
    [Theory, MemberData(nameof(Cases), "Unsqueeze")] public void Unsqueeze(string @case, int seed) => Check("Unsqueeze", @case, seed);
    [Theory, MemberData(nameof(Cases), "Flatten")] public void Flatten(string @case, int seed) => Check("Flatten", @case, seed);
    [Theory, MemberData(nameof(Cases), "Softmax")] public void Softmax(string @case, int seed) => Check("Softmax", @case, seed);
    [Theory, MemberData(nameof(Cases), "LogSoftmax")] public void LogSoftmax(string @case, int seed) => Check("LogSoftmax", @case, seed);
    [Theory, MemberData(nameof(Cases), "LayerNormalization")] public void LayerNormalization(string @case, int seed) => Check("LayerNormalization", @case, seed);
    [Theory, MemberData(nameof(Cases), "ReduceSum")] public void ReduceSum(string @case, int seed) => Check("ReduceSum", @case, seed);
    [Theory, MemberData(nameof(Cases), "ReduceMean")] public void ReduceMean(string @case, int seed) => Check("ReduceMean", @case, seed);
    [Theory, MemberData(nameof(Cases), "MatMul")] public void MatMul(string @case, int seed) => Check("MatMul", @case, seed);
    [Theory, MemberData(nameof(Cases), "Gemm")] public void Gemm(string @case, int seed) => Check("Gemm", @case, seed);
    [Theory, MemberData(nameof(Cases), "Transpose")] public void Transpose(string @case, int seed) => Check("Transpose", @case, seed);
    [Theory, MemberData(nameof(Cases), "Concat")] public void Concat(string @case, int seed) => Check("Concat", @case, seed);
    [Theory, MemberData(nameof(Cases), "Split")] public void Split(string @case, int seed) => Check("Split", @case, seed);
    [Theory, MemberData(nameof(Cases), "Slice")] public void Slice(string @case, int seed) => Check("Slice", @case, seed);
    [Theory, MemberData(nameof(Cases), "Gather")] public void Gather(string @case, int seed) => Check("Gather", @case, seed);
    [Theory, MemberData(nameof(Cases), "GatherElements")] public void GatherElements(string @case, int seed) => Check("GatherElements", @case, seed);
    [Theory, MemberData(nameof(Cases), "Dropout")] public void Dropout(string @case, int seed) => Check("Dropout", @case, seed);
    [Theory, MemberData(nameof(Cases), "ResponseHeadLoss")] public void ResponseHeadLoss(string @case, int seed) => Check("ResponseHeadLoss", @case, seed);
}

/// <summary>The finite-difference case table: one entry per (op, case), each with its own seed.</summary>
public static class FdCases
{
    private const ElementType F32 = ElementType.Float;

    public static IReadOnlyList<FdCase> All { get; } = Build();

    public static FdCase Find(string op, string name) =>
        All.SingleOrDefault(c => c.Op == op && c.Name == name) ?? throw new KeyNotFoundException($"no case '{name}' for {op}.");

    private static long[] S(params long[] dims) => dims;

    /// <summary>
    /// The fused head and response loss (lowered to its Loop before ONNX Runtime sees it): the loss with respect to the
    /// hidden rows, cross-entropy alone (head [d, V]) and with the KL term (a tied [V, d] table), 2 rows per chunk so
    /// that the rows are split and padded.
    /// </summary>
    private static IEnumerable<FdCase> FusedHead()
    {
        yield return new FdCase("ResponseHeadLoss", "cross-entropy, head d x V", 9101, g =>
        {
            var h = g.Param("H", [5, 4]);
            var head = g.Const([4, 7], -1.5, 1.5);
            var node = Autodiff.Losses.FusedResponseHead.Append(g.B, h, head, false, g.Int64s([5], 3, 0, 6, 6, 2), g.Const([5], 0.1, 1));
            return node.Outputs[Autodiff.Losses.FusedResponseHead.LossOutput];
        }) { Precision = F32 };
        yield return new FdCase("ResponseHeadLoss", "cross-entropy and KL, tied V x d table", 9102, g =>
        {
            var h = g.Param("H", [5, 4]);
            var table = g.Const([7, 4], -1.5, 1.5);
            var node = Autodiff.Losses.FusedResponseHead.Append(g.B, h, table, true, g.Int64s([5], 1, 5, 0, 4, 4),
                g.Const([5], 0.1, 1), g.Const([5], 0.1, 1), g.Const([5, 4], -1, 1));
            return node.Outputs[Autodiff.Losses.FusedResponseHead.LossOutput];
        }) { Precision = F32 };
    }

    private static List<FdCase> Build()
    {
        var all = new List<FdCase>();
        all.AddRange(Binary("Add", 1000, positiveRight: false));
        all.AddRange(Binary("Sub", 1100, positiveRight: false));
        all.AddRange(Binary("Mul", 1200, positiveRight: false));
        all.AddRange(Binary("Div", 1300, positiveRight: true));
        all.AddRange(Pow());
        all.AddRange(Variadic("Sum", 1500));
        all.AddRange(Variadic("Mean", 1600, ElementType.Float)); // ONNX Runtime's CPU Mean has no float64 kernel
        all.AddRange(Where());
        all.AddRange(Unary("Identity", 1800, (g, d) => g.Param("X", d)));
        all.AddRange(Unary("Neg", 1810, (g, d) => g.Param("X", d)));
        all.AddRange(Unary("Exp", 1820, (g, d) => g.Param("X", d)));
        all.AddRange(Unary("Log", 1830, (g, d) => g.Param("X", d, 0.5, 2)));
        all.AddRange(Unary("Sqrt", 1840, (g, d) => g.Param("X", d, 0.5, 2)));
        all.AddRange(Unary("Reciprocal", 1850, (g, d) => g.ParamNonZero("X", d, 0.5, 1.5)));
        all.AddRange(Unary("Tanh", 1860, (g, d) => g.Param("X", d, -2, 2)));
        all.AddRange(Unary("Sigmoid", 1870, (g, d) => g.Param("X", d, -3, 3)));
        all.AddRange(Unary("Relu", 1880, (g, d) => g.ParamNonZero("X", d, 0.2, 1.2)));
        all.AddRange(Unary("Erf", 1890, (g, d) => g.Param("X", d, -1.5, 1.5)));
        all.AddRange(Unary("Sin", 1900, (g, d) => g.Param("X", d, -3, 3)));
        all.AddRange(Unary("Cos", 1910, (g, d) => g.Param("X", d, -3, 3)));
        all.AddRange(Unary("Abs", 1920, (g, d) => g.ParamNonZero("X", d, 0.2, 1.2)));
        all.AddRange(Cast());
        all.AddRange(Shapes());
        all.AddRange(Softmaxes());
        all.AddRange(LayerNorm());
        all.AddRange(Reductions());
        all.AddRange(MatMul());
        all.AddRange(Gemm());
        all.AddRange(Movement());
        all.AddRange(Gathers());
        all.AddRange(Dropout());
        all.AddRange(FusedHead());
        return all;
    }

    // ---- elementwise -------------------------------------------------------------------------------------------------

    private static IEnumerable<FdCase> Binary(string op, int seed, bool positiveRight)
    {
        (string Name, long[] A, long[] B)[] shapes =
        [
            ("same shape [2,3,4]", S(2, 3, 4), S(2, 3, 4)),
            ("[2,3,4] with [4]", S(2, 3, 4), S(4)),
            ("[2,3,4] with [3,1]", S(2, 3, 4), S(3, 1)),
            ("[2,3,4] with [1]", S(2, 3, 4), S(1)),
            ("[2,3,4] with scalar", S(2, 3, 4), S()),
            ("[4] with [2,3,4]", S(4), S(2, 3, 4)),
            ("[3,1] with [2,3,4]", S(3, 1), S(2, 3, 4)),
            ("scalar with [2,3]", S(), S(2, 3)),
            ("[2,1,4] with [3,1]", S(2, 1, 4), S(3, 1)),
            ("[3,1] with [1,4]", S(3, 1), S(1, 4)),
        ];
        Value Right(FdGraph g, long[] d) => positiveRight ? g.ParamNonZero("B", d, 0.5, 1.5) : g.Param("B", d);
        foreach (var (name, a, b) in shapes)
            yield return new FdCase(op, name, seed++, g => g.B.Op(op, g.Param("A", a), Right(g, b)));
        yield return new FdCase(op, "[2,3] with [3] float32", seed++, g => g.B.Op(op, g.Param("A", S(2, 3)), Right(g, S(3)))) { Precision = F32 };
        yield return new FdCase(op, "same input twice", seed, g => { var a = positiveRight ? g.ParamNonZero("A", S(2, 3), 0.5, 1.5) : g.Param("A", S(2, 3)); return g.B.Op(op, a, a); });
    }

    private static IEnumerable<FdCase> Pow()
    {
        yield return new("Pow", "constant exponent 2", 1400, g => g.B.Pow(g.Param("A", S(2, 3), 0.5, 1.5), g.Scalar(2)));
        yield return new("Pow", "constant exponent 0.5", 1401, g => g.B.Pow(g.Param("A", S(2, 3), 0.5, 1.5), g.Scalar(0.5)));
        yield return new("Pow", "tensor exponent [3] broadcast", 1402, g => g.B.Pow(g.Param("A", S(2, 3), 0.5, 1.5), g.Param("P", S(3), -1, 2)));
        yield return new("Pow", "scalar exponent parameter", 1403, g => g.B.Pow(g.Param("A", S(2, 3), 0.5, 1.5), g.Param("P", S(), 0.5, 2.5)));
        yield return new("Pow", "exponent [2,3] with base [3]", 1404, g => g.B.Pow(g.Param("A", S(3), 0.5, 1.5), g.Param("P", S(2, 3), -1, 2)));
        yield return new("Pow", "constant exponent 2 float32", 1405, g => g.B.Pow(g.Param("A", S(2, 3), 0.5, 1.5), g.Scalar(2))) { Precision = F32 };
        yield return new("Pow", "int64 constant exponent 3", 1406, g => g.B.Pow(g.Param("A", S(2, 3), 0.5, 1.5), g.Int64s([], 3)));
    }

    private static IEnumerable<FdCase> Variadic(string op, int seed, ElementType precision = ElementType.Double)
    {
        yield return new(op, "three inputs [2,3,4] + [3,1] + [4]", seed, g => g.B.Op(op, g.Param("A", S(2, 3, 4)), g.Param("B", S(3, 1)), g.Param("C", S(4)))) { Precision = precision };
        yield return new(op, "three inputs [4] + [2,1,4] + scalar", seed + 1, g => g.B.Op(op, g.Param("A", S(4)), g.Param("B", S(2, 1, 4)), g.Param("C", S()))) { Precision = precision };
        yield return new(op, "two inputs same shape", seed + 2, g => g.B.Op(op, g.Param("A", S(2, 3)), g.Param("B", S(2, 3)))) { Precision = precision };
        yield return new(op, "single input", seed + 3, g => g.B.Op(op, g.Param("A", S(2, 3)))) { Precision = precision };
        yield return new(op, "three inputs float32", seed + 4, g => g.B.Op(op, g.Param("A", S(2, 3)), g.Param("B", S(3)), g.Param("C", S(2, 1)))) { Precision = F32 };
    }

    private static IEnumerable<FdCase> Where()
    {
        static Value Cond(FdGraph g, long[] d) => g.Bools(d, [.. Enumerable.Range(0, FdGraph.Count(d)).Select(_ => g.Rng.Next(2) == 1)]);
        yield return new("Where", "cond [3,4], x [2,3,4], y [4]", 1700, g => g.B.Where(Cond(g, S(3, 4)), g.Param("X", S(2, 3, 4)), g.Param("Y", S(4))));
        yield return new("Where", "cond [2,1,4], x [3,1], y scalar", 1701, g => g.B.Where(Cond(g, S(2, 1, 4)), g.Param("X", S(3, 1)), g.Param("Y", S())));
        yield return new("Where", "all [2,3]", 1702, g => g.B.Where(Cond(g, S(2, 3)), g.Param("X", S(2, 3)), g.Param("Y", S(2, 3))));
        yield return new("Where", "cond [2,3], x [2,3], y [3] float32", 1703, g => g.B.Where(Cond(g, S(2, 3)), g.Param("X", S(2, 3)), g.Param("Y", S(3)))) { Precision = F32 };
        yield return new("Where", "y is a constant", 1704, g => g.B.Where(Cond(g, S(2, 3)), g.Param("X", S(2, 3)), g.Const(S(2, 3))));
    }

    private static IEnumerable<FdCase> Unary(string op, int seed, Func<FdGraph, long[], Value> input)
    {
        // ONNX Runtime's CPU Erf has no float64 kernel.
        yield return new(op, "[2,3,4]", seed, g => g.B.Op(op, input(g, S(2, 3, 4)))) { Precision = op == "Erf" ? F32 : ElementType.Double };
        yield return new(op, "[3,5] float32", seed + 1, g => g.B.Op(op, input(g, S(3, 5)))) { Precision = F32 };
    }

    private static IEnumerable<FdCase> Cast()
    {
        yield return new("Cast", "float->double->float", 2000,
            g => g.B.Cast(g.B.Cast(g.Param("X", S(2, 3)), ElementType.Double), F32)) { Precision = F32 };
        yield return new("Cast", "float->double, Exp in double, ->float", 2001,
            g => g.B.Cast(g.B.Exp(g.B.Cast(g.Param("X", S(2, 3)), ElementType.Double)), F32)) { Precision = F32 };
        yield return new("Cast", "double->double (no-op cast)", 2002, g => g.B.Cast(g.Param("X", S(2, 3)), ElementType.Double));
        yield return new("Cast", "float->float (no-op cast)", 2003, g => g.B.Cast(g.Param("X", S(2, 3)), F32)) { Precision = F32 };
    }

    // ---- shape ops ---------------------------------------------------------------------------------------------------

    private static IEnumerable<FdCase> Shapes()
    {
        yield return new("Expand", "[3,1] to [2,3,4]", 2100, g => g.B.Expand(g.Param("X", S(3, 1)), g.B.Ints(2, 3, 4)));
        yield return new("Expand", "[4] to [2,3,4]", 2101, g => g.B.Expand(g.Param("X", S(4)), g.B.Ints(2, 3, 4)));
        yield return new("Expand", "[2,1,4] by [3,1] to [2,3,4]", 2102, g => g.B.Expand(g.Param("X", S(2, 1, 4)), g.B.Ints(3, 1)));
        yield return new("Expand", "[3,4] to [3,4] (no broadcast)", 2103, g => g.B.Expand(g.Param("X", S(3, 4)), g.B.Ints(3, 4)));
        yield return new("Expand", "scalar to [2,3]", 2104, g => g.B.Expand(g.Param("X", S()), g.B.Ints(2, 3)));

        yield return new("Reshape", "[2,3,4] to [0,-1]", 2200, g => g.B.Reshape(g.Param("X", S(2, 3, 4)), 0, -1));
        yield return new("Reshape", "[2,3,4] to [-1,2,0]", 2201, g => g.B.Reshape(g.Param("X", S(2, 3, 4)), -1, 2, 0));
        yield return new("Reshape", "[2,3,4] to [24]", 2202, g => g.B.Reshape(g.Param("X", S(2, 3, 4)), 24));

        yield return new("Squeeze", "[2,1,3,1] axes [1,3]", 2300, g => g.B.Squeeze(g.Param("X", S(2, 1, 3, 1)), 1, 3));
        yield return new("Squeeze", "[2,1,3,1] axes [-1]", 2301, g => g.B.Squeeze(g.Param("X", S(2, 1, 3, 1)), -1));
        yield return new("Squeeze", "[1,3,1] no axes", 2302, g => g.B.Op("Squeeze", g.Param("X", S(1, 3, 1))));

        yield return new("Unsqueeze", "[2,3] axes [0,-1]", 2400, g => g.B.Unsqueeze(g.Param("X", S(2, 3)), 0, -1));
        yield return new("Unsqueeze", "[2,3] axes [1]", 2401, g => g.B.Unsqueeze(g.Param("X", S(2, 3)), 1));

        foreach (var (axis, seed) in new (long?, int)[] { (1, 2500), (0, 2501), (-1, 2502), (2, 2503), (null, 2504) })
            yield return new("Flatten", axis is null ? "[2,3,4] default axis" : $"[2,3,4] axis {axis}", seed,
                g => axis is null ? g.B.Op("Flatten", g.Param("X", S(2, 3, 4))) : g.B.Op("Flatten", [g.Param("X", S(2, 3, 4))], Attr.Of("axis", axis.Value)));

        yield return new("Transpose", "[2,3,4] perm [1,2,0]", 2600, g => g.B.Transpose(g.Param("X", S(2, 3, 4)), 1, 2, 0));
        yield return new("Transpose", "[2,3,4] default (reverse)", 2601, g => g.B.Op("Transpose", g.Param("X", S(2, 3, 4))));
        yield return new("Transpose", "[3,4] perm [1,0]", 2602, g => g.B.Transpose(g.Param("X", S(3, 4)), 1, 0));
        yield return new("Transpose", "[2,3,4,5] perm [0,2,1,3]", 2603, g => g.B.Transpose(g.Param("X", S(2, 3, 4, 5)), 0, 2, 1, 3));
    }

    private static IEnumerable<FdCase> Softmaxes()
    {
        foreach (var op in new[] { "Softmax", "LogSoftmax" })
        {
            int seed = op == "Softmax" ? 2700 : 2750;
            foreach (var axis in new long[] { -1, 0, 1 })
                yield return new(op, $"[2,3,4] axis {axis}", seed++, g => g.B.Op(op, [g.Param("X", S(2, 3, 4), -2, 2)], Attr.Of("axis", axis)));
            yield return new(op, "[2,3,4] default axis", seed++, g => g.B.Op(op, g.Param("X", S(2, 3, 4), -2, 2)));
            yield return new(op, "[3,5] axis -1 float32", seed, g => g.B.Op(op, [g.Param("X", S(3, 5), -2, 2)], Attr.Of("axis", -1L))) { Precision = F32 };
        }
    }

    private static IEnumerable<FdCase> LayerNorm()
    {
        // ONNX Runtime's CPU LayerNormalization with the default float stash; float32 throughout.
        (string Name, long Axis, long[] Scale, bool Bias, int Seed)[] cases =
        [
            ("axis -1 with bias", -1, S(4), true, 2800),
            ("axis -1 without bias", -1, S(4), false, 2801),
            ("axis 1 with bias", 1, S(3, 4), true, 2802),
            ("axis 1 without bias", 1, S(3, 4), false, 2803),
            ("axis 0 with bias", 0, S(2, 3, 4), true, 2804),
            ("axis -2 with bias", -2, S(3, 4), true, 2805),
        ];
        // Without bias the node gets two inputs: a trailing empty input name ("") makes ONNX Runtime 1.31 crash while
        // optimizing the session.
        foreach (var (name, axis, scale, bias, seed) in cases)
            yield return new("LayerNormalization", name, seed, g =>
            {
                var x = g.Param("X", S(2, 3, 4), -2, 2);
                var s = g.Param("scale", scale, 0.5, 1.5);
                Value?[] inputs = bias ? [x, s, g.Param("bias", scale)] : [x, s];
                return g.B.Op("LayerNormalization", inputs, Attr.Of("axis", axis), Attr.Of("epsilon", 1e-5f));
            })
            { Precision = F32, Eps = 3e-3 };
        // float64 X with the default float stash: Mean and InvStdDev are float, so the tolerance allows float rounding.
        yield return new("LayerNormalization", "axis -1 with bias float64", 2806, g => g.B.LayerNormalization(
            g.Param("X", S(2, 3, 4), -2, 2), g.Param("scale", S(4), 0.5, 1.5), g.Param("bias", S(4)), -1)) { Tolerance = 1e-4 };
    }

    private static IEnumerable<FdCase> Reductions()
    {
        // ReduceMean: axes as an attribute at opset 17 (an input from opset 18).
        static Value Mean(FdGraph g, long[]? axes, long keep)
        {
            var x = g.Param("X", S(2, 3, 4));
            return axes is null
                ? g.B.Op("ReduceMean", [x], Attr.Of("keepdims", keep))
                : g.B.Op("ReduceMean", [x], Attr.Of("axes", axes), Attr.Of("keepdims", keep));
        }
        yield return new("ReduceMean", "axes [1] keepdims 1", 2900, g => Mean(g, [1], 1));
        yield return new("ReduceMean", "axes [-1] keepdims 0", 2901, g => Mean(g, [-1], 0));
        yield return new("ReduceMean", "axes [0,2] keepdims 0", 2902, g => Mean(g, [0, 2], 0));
        yield return new("ReduceMean", "axes [2,-3] keepdims 1", 2903, g => Mean(g, [2, -3], 1));
        yield return new("ReduceMean", "no axes keepdims 1", 2904, g => Mean(g, null, 1));
        yield return new("ReduceMean", "no axes keepdims 0", 2905, g => Mean(g, null, 0));
        yield return new("ReduceMean", "opset 18 axes input [1] keepdims 0", 2906,
            g => g.B.Op("ReduceMean", [g.Param("X", S(2, 3, 4)), g.B.Ints(1)], Attr.Of("keepdims", 0L))) { Opset = 18 };
        yield return new("ReduceMean", "axes [-1] keepdims 0 float32", 2907, g => Mean(g, [-1], 0)) { Precision = F32 };

        // ReduceSum: axes as an input from opset 13.
        static Value Sum(FdGraph g, long[]? axes, long keep, long noop = 0)
        {
            var x = g.Param("X", S(2, 3, 4));
            Value?[] inputs = axes is null ? [x] : [x, g.Int64s([axes.Length], axes)];
            return g.B.Op("ReduceSum", inputs, Attr.Of("keepdims", keep), Attr.Of("noop_with_empty_axes", noop));
        }
        yield return new("ReduceSum", "axes [1] keepdims 1", 2950, g => Sum(g, [1], 1));
        yield return new("ReduceSum", "axes [-1] keepdims 0", 2951, g => Sum(g, [-1], 0));
        yield return new("ReduceSum", "axes [0,2] keepdims 0", 2952, g => Sum(g, [0, 2], 0));
        yield return new("ReduceSum", "axes [2,-3] keepdims 1", 2953, g => Sum(g, [2, -3], 1));
        yield return new("ReduceSum", "no axes keepdims 1", 2954, g => Sum(g, null, 1));
        yield return new("ReduceSum", "no axes keepdims 0", 2955, g => Sum(g, null, 0));
        yield return new("ReduceSum", "empty axes input keepdims 0", 2956, g => Sum(g, [], 0));
        yield return new("ReduceSum", "no axes noop_with_empty_axes 1", 2957, g => Sum(g, null, 1, noop: 1));
        yield return new("ReduceSum", "axes [-1] keepdims 0 float32", 2958, g => Sum(g, [-1], 0)) { Precision = F32 };
    }

    private static IEnumerable<FdCase> MatMul()
    {
        (string Name, long[] A, long[] B, int Seed)[] cases =
        [
            ("2D x 2D [3,4] x [4,5]", S(3, 4), S(4, 5), 3000),
            ("batched 3D x 2D weight [2,3,4] x [4,5]", S(2, 3, 4), S(4, 5), 3001),
            ("4D x 4D [2,2,3,4] x [2,2,4,5]", S(2, 2, 3, 4), S(2, 2, 4, 5), 3002),
            ("broadcast [2,1,3,4] x [5,4,6]", S(2, 1, 3, 4), S(5, 4, 6), 3003),
            ("vector 1D x 2D [4] x [4,5]", S(4), S(4, 5), 3004),
            ("vector 3D x 1D [2,3,4] x [4]", S(2, 3, 4), S(4), 3005),
            ("2D x 3D [3,4] x [2,4,5]", S(3, 4), S(2, 4, 5), 3006),
            ("vector 1D x 3D [4] x [2,4,5]", S(4), S(2, 4, 5), 3007),
            ("vector 1D x 1D [4] x [4]", S(4), S(4), 3008),
            ("vector 2D x 1D [3,4] x [4]", S(3, 4), S(4), 3009),
        ];
        foreach (var (name, a, b, seed) in cases)
            yield return new("MatMul", name, seed, g => g.B.MatMul(g.Param("A", a), g.Param("B", b)));
        yield return new("MatMul", "batched 3D x 2D float32", 3010, g => g.B.MatMul(g.Param("A", S(2, 3, 4)), g.Param("B", S(4, 5)))) { Precision = F32 };
        yield return new("MatMul", "constant left operand [3,4] x [4,5]", 3011, g => g.B.MatMul(g.Const(S(3, 4)), g.Param("B", S(4, 5))));
    }

    private static IEnumerable<FdCase> Gemm()
    {
        // M=3, K=4, N=5.
        static Value G(FdGraph g, bool ta, bool tb, long[]? c, float alpha = 1, float beta = 1) => g.B.Gemm(
            g.Param("A", ta ? S(4, 3) : S(3, 4)), g.Param("B", tb ? S(5, 4) : S(4, 5)), c is null ? null : g.Param("C", c), ta, tb, alpha, beta);
        yield return new("Gemm", "transA 0 transB 0, C [5]", 3100, g => G(g, false, false, S(5)));
        yield return new("Gemm", "transA 0 transB 1, C [1,5]", 3101, g => G(g, false, true, S(1, 5)));
        yield return new("Gemm", "transA 1 transB 0, C scalar", 3102, g => G(g, true, false, S()));
        yield return new("Gemm", "transA 1 transB 1, C [3,5]", 3103, g => G(g, true, true, S(3, 5)));
        yield return new("Gemm", "alpha 0.7 beta 1.3, C [5]", 3104, g => G(g, false, false, S(5), 0.7f, 1.3f));
        yield return new("Gemm", "alpha 1.5 beta 0.5, C [3,1], transA 1 transB 1", 3105, g => G(g, true, true, S(3, 1), 1.5f, 0.5f));
        yield return new("Gemm", "no C, alpha 2", 3106, g => G(g, false, true, null, 2f));
        yield return new("Gemm", "alpha 0.7 beta 1.3, C [1,5] float32", 3107, g => G(g, true, false, S(1, 5), 0.7f, 1.3f)) { Precision = F32 };
    }

    private static IEnumerable<FdCase> Movement()
    {
        yield return new("Concat", "3 inputs axis -2", 3200,
            g => g.B.Concat(-2, g.Param("A", S(2, 1, 4)), g.Param("B", S(2, 3, 4)), g.Param("C", S(2, 2, 4))));
        yield return new("Concat", "3 inputs axis 0", 3201, g => g.B.Concat(0, g.Param("A", S(1, 3)), g.Param("B", S(2, 3)), g.Param("C", S(1, 3))));
        yield return new("Concat", "parameter and constant axis 1", 3202, g => g.B.Concat(1, g.Param("A", S(2, 3)), g.Const(S(2, 2))));
        yield return new("Concat", "same input twice axis -1", 3203, g => { var a = g.Param("A", S(2, 3)); return g.B.Concat(-1, a, a, g.Param("B", S(2, 1))); });

        yield return new("Split", "sizes [1,2,3] axis 1, middle output unused", 3300, g =>
        {
            var parts = g.B.Split(g.Param("X", S(2, 6)), 1, 1, 2, 3);
            return g.B.Add(parts[0], parts[2]);
        });
        yield return new("Split", "sizes [1,3] axis -2, both used", 3301, g =>
        {
            var parts = g.B.Split(g.Param("X", S(4, 3)), -2, 1, 3);
            return g.B.Mul(parts[0], parts[1]);
        });
        yield return new("Split", "equal halves without sizes", 3302, g =>
        {
            var node = g.B.NewNode("Split", [g.Param("X", S(2, 4))], 2, [Attr.Of("axis", 1L)]);
            return g.B.Sub(node.Outputs[0], g.B.Mul(node.Outputs[1], node.Outputs[1]));
        });
        yield return new("Split", "first output unused", 3303, g => g.B.Split(g.Param("X", S(3, 4)), 0, 2, 1)[1]);

        yield return new("Slice", "positive and negative starts", 3400, g => g.B.Slice(g.Param("X", S(4, 6)), [1, -4], [3, 6], [0, 1]));
        yield return new("Slice", "step 2", 3401, g => g.B.Slice(g.Param("X", S(4, 6)), [0], [6], [1], [2]));
        yield return new("Slice", "negative step -1", 3402, g => g.B.Slice(g.Param("X", S(4, 6)), [-1], [-100], [0], [-1]));
        yield return new("Slice", "axes omitted", 3403, g => g.B.Op("Slice", g.Param("X", S(4, 6)), g.B.Ints(1, 0), g.B.Ints(3, 5)));
        yield return new("Slice", "negative axis, step -2", 3404, g => g.B.Slice(g.Param("X", S(4, 6)), [5], [0], [-1], [-2]));
        yield return new("Slice", "rank 3, ends past the end", 3405, g => g.B.Slice(g.Param("X", S(2, 3, 4)), [1, 2], [long.MaxValue, 100], [1, 2]));
    }

    private static IEnumerable<FdCase> Gathers()
    {
        static void Uses(BackwardResult r, bool scatter, string name)
        {
            var ops = r.Model.Graph.Nodes.Where(n => n.Name.StartsWith("/grad", StringComparison.Ordinal)).Select(n => n.OpType).ToHashSet();
            if (scatter)
                Assert.True(ops.Contains("ScatterND"), $"{name}: expected a ScatterND in the backward graph; ops: {string.Join(", ", ops)}");
            else
                Assert.True(!ops.Contains("ScatterND") && ops.Contains("OneHot"), $"{name}: expected OneHot and no ScatterND; ops: {string.Join(", ", ops)}");
        }
        int seed = 3500;
        foreach (var mode in new[] { EmbeddingGradient.ScatterAdd, EmbeddingGradient.OneHotMatMul })
        {
            var options = new BackwardOptions { EmbeddingGradient = mode };
            bool scatter = mode == EmbeddingGradient.ScatterAdd;
            yield return new("Gather", $"axis 0, repeated and negative indices ({mode})", seed++,
                g => g.B.Gather(g.Param("W", S(5, 3)), g.Int64s(S(2, 3), 0, 2, -1, 2, 2, 4)))
            { Options = options, Inspect = r => Uses(r, scatter, mode.ToString()) };
            yield return new("Gather", $"axis 1 ({mode})", seed++,
                g => g.B.Gather(g.Param("W", S(3, 5)), g.Int64s(S(4), 4, 0, 4, -2), axis: 1)) { Options = options };
            yield return new("Gather", $"scalar index ({mode})", seed++,
                g => g.B.Gather(g.Param("W", S(5, 3)), g.Int64s(S(), 2))) { Options = options };
            yield return new("Gather", $"axis 1 of rank 3, 2-D indices ({mode})", seed++,
                g => g.B.Gather(g.Param("W", S(2, 5, 3)), g.Int64s(S(2, 2), 1, -1, 1, 0), axis: 1)) { Options = options };
            yield return new("Gather", $"axis -1, scalar index ({mode})", seed++,
                g => g.B.Gather(g.Param("W", S(2, 5)), g.Int64s(S(), 3), axis: -1)) { Options = options };
            yield return new("Gather", $"int32 indices ({mode})", seed++,
                g => g.B.Gather(g.Param("W", S(5, 3)), g.B.Constant(TensorData.Create<int>("c", S(4), [1, 1, -5, 3])))) { Options = options };
            yield return new("Gather", $"axis 0 float32 ({mode})", seed++,
                g => g.B.Gather(g.Param("W", S(5, 3)), g.Int64s(S(2, 3), 0, 2, -1, 2, 2, 4))) { Options = options, Precision = F32 };
        }
        yield return new("Gather", "opset 15, ScatterAdd falls back to OneHot", seed++,
            g => g.B.Gather(g.Param("W", S(5, 3)), g.Int64s(S(2, 3), 0, 2, -1, 2, 2, 4)))
        { Opset = 15, Options = new BackwardOptions { EmbeddingGradient = EmbeddingGradient.ScatterAdd }, Inspect = r => Uses(r, false, "opset 15") };
        yield return new("Gather", "opset 16, ScatterAdd uses ScatterND", seed,
            g => g.B.Gather(g.Param("W", S(5, 3)), g.Int64s(S(2, 3), 0, 2, -1, 2, 2, 4)))
        { Opset = 16, Options = new BackwardOptions { EmbeddingGradient = EmbeddingGradient.ScatterAdd }, Inspect = r => Uses(r, true, "opset 16") };

        static Value GE(FdGraph g, long[] data, long[] idxDims, long[] idx, long axis) =>
            g.B.Op("GatherElements", [g.Param("X", data), g.Int64s(idxDims, idx)], Attr.Of("axis", axis));
        yield return new("GatherElements", "axis 1 distinct indices", 3600, g => GE(g, S(3, 4), S(3, 2), [0, 3, 2, 1, 1, -1], 1));
        yield return new("GatherElements", "axis 0 distinct indices", 3601, g => GE(g, S(3, 4), S(2, 4), [0, 2, 1, -1, 2, 0, 0, 1], 0));
        yield return new("GatherElements", "axis -1 repeated indices", 3602, g => GE(g, S(3, 4), S(3, 3), [0, 0, 1, 3, 3, 3, 1, -3, 2], -1));
        yield return new("GatherElements", "axis 1 distinct indices, opset 15", 3603, g => GE(g, S(3, 4), S(3, 2), [0, 3, 2, 1, 1, -1], 1)) { Opset = 15 };
        yield return new("GatherElements", "axis 1 distinct indices float32", 3604, g => GE(g, S(3, 4), S(3, 2), [0, 3, 2, 1, 1, -1], 1)) { Precision = F32 };
    }

    private static IEnumerable<FdCase> Dropout()
    {
        yield return new("Dropout", "training_mode absent (identity)", 3700, g => g.B.Op("Dropout", g.Param("X", S(2, 3, 4))));
        yield return new("Dropout", "ratio 0.5, training_mode absent", 3701, g => g.B.Op("Dropout", g.Param("X", S(2, 3, 4)), g.Scalar(0.5)));
        yield return new("Dropout", "ratio 0.3, training_mode false", 3702, g => g.B.Op("Dropout", g.Param("X", S(2, 3, 4)), g.Scalar(0.3), g.Bools([], false)));
        yield return new("Dropout", "training_mode true, ratio 0", 3703, g => g.B.Op("Dropout", g.Param("X", S(2, 3, 4)), g.Scalar(0), g.Bools([], true)));
        yield return new("Dropout", "training_mode true, ratio 0 float32", 3704, g => g.B.Op("Dropout", g.Param("X", S(2, 3, 4)), g.Scalar(0), g.Bools([], true))) { Precision = F32 };
        yield return new("Dropout", "training_mode true, ratio 0, mask output used", 3705, g =>
        {
            var node = g.B.NewNode("Dropout", [g.Param("X", S(2, 3)), g.Scalar(0), g.Bools([], true)], 2);
            return g.B.Mul(node.Outputs[0], g.B.Cast(node.Outputs[1], g.Precision));
        });
    }
}
