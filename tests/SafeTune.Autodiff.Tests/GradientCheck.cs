using System.Globalization;
using Microsoft.ML.OnnxRuntime;
using SafeTune.Onnx;
using SafeTune.Onnx.Shapes;
using SafeTune.Runtime;

namespace SafeTune.Autodiff.Tests;

/// <summary>
/// What a finite-difference case builder sees: a graph builder for a new model, a seeded random source and the
/// precision (float64 or float32) that parameters and float constants are made in.
/// </summary>
public sealed class FdGraph(GraphBuilder builder, Random rng, ElementType precision)
{
    /// <summary>The builder of the forward graph.</summary>
    public GraphBuilder B { get; } = builder;

    /// <summary>The case's seeded random source (parameters and constants draw from it in order).</summary>
    public Random Rng { get; } = rng;

    /// <summary>The element type of parameters and float constants.</summary>
    public ElementType Precision { get; } = precision;

    /// <summary>A parameter (initializer) with values uniform in [lo, hi).</summary>
    public Value Param(string name, long[] dims, double lo = -1, double hi = 1) => B.Parameter(Data(name, dims, lo, hi));

    /// <summary>A parameter whose values have magnitude in [min, max) and a random sign (away from 0).</summary>
    public Value ParamNonZero(string name, long[] dims, double min = 0.25, double max = 1.25) =>
        B.Parameter(Typed(name, dims, NonZero(Count(dims), min, max), Precision));

    /// <summary>A parameter with explicit values.</summary>
    public Value ParamValues(string name, long[] dims, params double[] values) => B.Parameter(Typed(name, dims, values, Precision));

    /// <summary>A float constant (a Constant node, so not a parameter) with values uniform in [lo, hi).</summary>
    public Value Const(long[] dims, double lo = -1, double hi = 1) => B.Constant(Data("c", dims, lo, hi));

    /// <summary>A float scalar constant of the case's precision.</summary>
    public Value Scalar(double value) => B.Constant(Typed("c", [], [value], Precision));

    /// <summary>An int64 constant of any shape.</summary>
    public Value Int64s(long[] dims, params long[] values) => B.Constant(TensorData.Create<long>("c", dims, values));

    /// <summary>A bool constant of any shape.</summary>
    public Value Bools(long[] dims, params bool[] values) => B.Constant(TensorData.Create<bool>("c", dims, values));

    /// <summary>Random typed data of the case's precision.</summary>
    public TensorData Data(string name, long[] dims, double lo, double hi) =>
        Typed(name, dims, [.. Enumerable.Range(0, Count(dims)).Select(_ => lo + (hi - lo) * Rng.NextDouble())], Precision);

    private double[] NonZero(int n, double min, double max) =>
        [.. Enumerable.Range(0, n).Select(_ => (Rng.Next(2) == 0 ? -1 : 1) * (min + (max - min) * Rng.NextDouble()))];

    internal static int Count(long[] dims) => checked((int)dims.Aggregate(1L, (p, d) => p * d));

    /// <summary>Typed tensor data from doubles.</summary>
    public static TensorData Typed(string name, long[] dims, double[] values, ElementType type) => type switch
    {
        ElementType.Double => TensorData.Create<double>(name, dims, values),
        ElementType.Float => TensorData.Create<float>(name, dims, [.. values.Select(v => (float)v)]),
        _ => throw new ArgumentException($"unsupported precision {type}"),
    };
}

/// <summary>
/// One finite-difference case: a forward graph with parameters and one output <c>y</c>. The harness appends
/// <c>loss = ReduceSum(y * R)</c> with a seeded random R shaped like y.
/// </summary>
public sealed record FdCase(string Op, string Name, int Seed, Func<FdGraph, Value> Build)
{
    /// <summary>float64 where ONNX Runtime's CPU kernels have it, else float32.</summary>
    public ElementType Precision { get; init; } = ElementType.Double;

    /// <summary>The default-domain opset of the forward model.</summary>
    public long Opset { get; init; } = 17;

    /// <summary>Backward options (embedding gradient mode).</summary>
    public BackwardOptions? Options { get; init; }

    /// <summary>Overrides the precision's default tolerance.</summary>
    public double? Tolerance { get; init; }

    /// <summary>Overrides the precision's default step.</summary>
    public double? Eps { get; init; }

    /// <summary>Extra checks on the backward graph (e.g. which ops it uses).</summary>
    public Action<BackwardResult>? Inspect { get; init; }
}

/// <summary>The comparison for one parameter.</summary>
public sealed record ParameterError(string Parameter, double Error, int WorstIndex, string WorstPosition, double Analytic, double Numeric, int Checked, int Elements);

/// <summary>The outcome of a finite-difference check.</summary>
public sealed record FdReport(string Op, string Case, int Seed, double Tolerance, double Eps, double Loss,
    IReadOnlyList<ParameterError> Parameters, IReadOnlyDictionary<string, double[]> Gradients, BackwardResult Backward)
{
    /// <summary>The largest error over the parameters.</summary>
    public double WorstError => Parameters.Count == 0 ? 0 : Parameters.Max(p => p.Error);

    /// <summary>One line per parameter, for test output.</summary>
    public string Summary() => string.Join(Environment.NewLine, Parameters.Select(p =>
        string.Create(CultureInfo.InvariantCulture,
            $"FD op={Op} case='{Case}' seed={Seed} param={p.Parameter} checked={p.Checked}/{p.Elements} error={p.Error:e2} (tolerance {Tolerance:g3}, eps {Eps:g3})")));
}

/// <summary>A gradient check failed or could not run; the message names the op, case, seed and tolerance.</summary>
public sealed class GradientCheckException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Compares the analytic gradients of <see cref="BackwardBuilder"/> (run in ONNX Runtime) with central differences of the
/// forward loss. Every element is checked for tensors of at most 64 elements, else a seeded sample of 24. The error of a
/// parameter is max |analytic - numeric| / max(1e-3, max |numeric|).
/// </summary>
public static class GradientCheck
{
    /// <summary>Asserts every element within <paramref name="tolerance"/> times the largest expected magnitude.</summary>
    public static void AssertClose(double[] expected, double[] actual, double tolerance, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = Math.Max(1e-12, expected.Max(Math.Abs));
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tolerance * scale,
                $"{what}: element {i}: expected {expected[i]:r}, got {actual[i]:r} (tolerance {tolerance:g3} x {scale:g3})");
    }

    /// <summary>Tensors up to this many elements are checked completely.</summary>
    public const int FullCheckLimit = 64;

    /// <summary>Elements sampled from larger tensors.</summary>
    public const int SampleSize = 24;

    /// <summary>The default tolerance of a precision.</summary>
    public static double DefaultTolerance(ElementType t) => t == ElementType.Double ? 1e-6 : 1e-2;

    /// <summary>The default central-difference step of a precision.</summary>
    public static double DefaultEps(ElementType t) => t == ElementType.Double ? 1e-6 : 1e-2;

    private static string Context(string op, string name, int seed, double tolerance) =>
        string.Create(CultureInfo.InvariantCulture, $"op {op}, case '{name}', seed {seed}, tolerance {tolerance:g3}");

    /// <summary>Builds the case's graph, appends the R-weighted loss, and checks every parameter; throws on a mismatch.</summary>
    public static FdReport Run(FdCase c)
    {
        double tol = c.Tolerance ?? DefaultTolerance(c.Precision);
        double eps = c.Eps ?? DefaultEps(c.Precision);
        var model = BuildLossModel(c, tol);
        var parameters = model.Graph.Initializers.Where(v => v.Initializer!.ElementType.IsFloatingPoint()).Select(v => v.Name).ToList();
        return CheckModel(c.Op, c.Name, c.Seed, model, "loss", parameters, new Dictionary<string, TensorData>(), c.Options, tol, eps, c.Inspect);
    }

    /// <summary>The case's forward model with <c>loss = ReduceSum(y * R)</c> appended (R seeded from the case's seed).</summary>
    public static Model BuildLossModel(FdCase c, double? tolerance = null)
    {
        string context = Context(c.Op, c.Name, c.Seed, tolerance ?? DefaultTolerance(c.Precision));
        var b = GraphBuilder.ForNewModel(c.Opset);
        var g = new FdGraph(b, new Random(c.Seed), c.Precision);
        Value y;
        try { y = c.Build(g); }
        catch (Exception e) { throw new GradientCheckException($"{context}: building the forward graph failed: {e.Message}", e); }
        b.Output(y, "y");
        var model = b.Model!;
        var (dims, type) = OutputTypeAndShape(model, "y", context);
        var rng = new Random(unchecked(c.Seed * 7919 + 17));
        var r = FdGraph.Typed("R", dims, [.. Enumerable.Range(0, FdGraph.Count(dims)).Select(_ => rng.NextDouble() * 2 - 1)], type);
        using (b.Scope("fd_loss"))
        {
            var loss = b.Op("ReduceSum", [b.Mul(y, b.Constant(r))], Onnx.Attribute.Of("keepdims", 0L));
            b.Output(loss, "loss");
        }
        return model;
    }

    /// <summary>
    /// Checks d <paramref name="loss"/> / d parameter of a model whose loss is a scalar output. Extra inputs (labels,
    /// reference logits, loss weights) are fed unchanged. Throws <see cref="GradientCheckException"/> on a mismatch.
    /// </summary>
    public static FdReport CheckModel(string op, string name, int seed, Model lossModel, string loss, IReadOnlyList<string> parameters,
        IReadOnlyDictionary<string, TensorData> extraInputs, BackwardOptions? options, double tolerance, double eps,
        Action<BackwardResult>? inspect = null, bool throwOnMismatch = true)
    {
        string context = Context(op, name, seed, tolerance);
        BackwardResult backward;
        try { backward = BackwardBuilder.Build(lossModel, loss, parameters, options); }
        catch (Exception e) { throw new GradientCheckException($"{context}: BackwardBuilder.Build failed: {e.GetType().Name}: {e.Message}", e); }
        inspect?.Invoke(backward);

        // Analytic gradients from the training graph.
        double analyticLoss;
        var analytic = new Dictionary<string, double[]>(StringComparer.Ordinal);
        using (var session = CreateSession(backward.Model, context, "backward"))
        using (var bag = new OrtValueBag())
        {
            var names = new List<string>();
            var values = new List<OrtValue>();
            foreach (var input in session.InputMetadata.Keys)
            {
                var data = backward.InitialValues.TryGetValue(input, out var d) ? d
                    : extraInputs.TryGetValue(input, out var e) ? e
                    : throw new GradientCheckException($"{context}: the backward graph needs input '{input}', which the check does not provide.");
                names.Add(input);
                values.Add(bag.Add(input, OrtValues.FromTensorData(data)));
            }
            var outputs = new[] { backward.LossName }.Concat(backward.Parameters.Select(BackwardResult.GradientName)).ToArray();
            using var results = RunSession(session, names, values, outputs, context, "backward");
            analyticLoss = ReadDoubles(results[0])[0];
            for (int i = 0; i < backward.Parameters.Count; i++)
            {
                var grad = ReadDoubles(results[i + 1]);
                var expected = backward.InitialValues[backward.Parameters[i]].ElementCount;
                if (grad.Length != expected)
                    throw new GradientCheckException($"{context}: parameter '{backward.Parameters[i]}': the gradient has {grad.Length} elements, the parameter {expected}.");
                analytic[backward.Parameters[i]] = grad;
            }
        }

        // The forward loss with the parameters as inputs, for central differences.
        var forward = Model.FromBytes(lossModel.ToBytes(), displayName: "fd forward");
        var fg = forward.Graph;
        var initial = new Dictionary<string, TensorData>(StringComparer.Ordinal);
        foreach (var p in parameters) initial[p] = fg.PromoteInitializerToInput(fg.FindInitializer(p)!);
        foreach (var o in fg.Outputs.ToList()) if (o.Name != loss) fg.RemoveOutput(o);

        var errors = new List<ParameterError>();
        using (var session = CreateSession(forward, context, "forward"))
        using (var bag = new OrtValueBag())
        {
            var names = new List<string>();
            var values = new List<OrtValue>();
            var buffers = new Dictionary<string, Array>(StringComparer.Ordinal);
            foreach (var input in session.InputMetadata.Keys)
            {
                OrtValue v;
                if (initial.TryGetValue(input, out var data))
                {
                    // The OrtValue wraps the array without a copy, so perturbing the array perturbs the input.
                    if (data.ElementType == ElementType.Double)
                    {
                        var arr = data.AsSpan<double>().ToArray();
                        buffers[input] = arr;
                        v = OrtValues.Wrap(arr, data.Dims);
                    }
                    else if (data.ElementType == ElementType.Float)
                    {
                        var arr = data.AsSpan<float>().ToArray();
                        buffers[input] = arr;
                        v = OrtValues.Wrap(arr, data.Dims);
                    }
                    else throw new GradientCheckException($"{context}: parameter '{input}' is {data.ElementType}; the check handles float and double.");
                }
                else if (extraInputs.TryGetValue(input, out var extra)) v = OrtValues.FromTensorData(extra);
                else throw new GradientCheckException($"{context}: the forward graph needs input '{input}', which the check does not provide.");
                names.Add(input);
                values.Add(bag.Add(input, v));
            }
            string[] outputs = [loss];
            double Loss()
            {
                using var r = RunSession(session, names, values, outputs, context, "forward");
                return ReadDoubles(r[0])[0];
            }

            double baseLoss = Loss();
            double lossTol = Math.Max(1e-12, Math.Abs(baseLoss)) * (initial.Values.Any(d => d.ElementType == ElementType.Float) ? 1e-5 : 1e-7);
            if (!(Math.Abs(baseLoss - analyticLoss) <= lossTol))
                throw new GradientCheckException(string.Create(CultureInfo.InvariantCulture,
                    $"{context}: the training graph's loss {analyticLoss:r} differs from the forward loss {baseLoss:r}."));

            for (int pi = 0; pi < parameters.Count; pi++)
            {
                var p = parameters[pi];
                var buffer = buffers[p];
                var dims = initial[p].Dims;
                int n = buffer.Length;
                var indices = n <= FullCheckLimit
                    ? Enumerable.Range(0, n).ToArray()
                    : Sample(n, SampleSize, new Random(unchecked(seed * 31 + pi + 1)));
                var numeric = new double[indices.Length];
                var a = analytic[p];
                for (int k = 0; k < indices.Length; k++)
                {
                    int i = indices[k];
                    double step;
                    double plus, minus;
                    if (buffer is double[] dbl)
                    {
                        double orig = dbl[i];
                        dbl[i] = orig + eps; double hi = dbl[i]; plus = Loss();
                        dbl[i] = orig - eps; double lo = dbl[i]; minus = Loss();
                        dbl[i] = orig;
                        step = hi - lo;
                    }
                    else
                    {
                        var flt = (float[])buffer;
                        float orig = flt[i];
                        flt[i] = (float)(orig + eps); double hi = flt[i]; plus = Loss();
                        flt[i] = (float)(orig - eps); double lo = flt[i]; minus = Loss();
                        flt[i] = orig;
                        step = hi - lo;
                    }
                    numeric[k] = (plus - minus) / step;
                }
                double scale = Math.Max(1e-3, numeric.Select(Math.Abs).DefaultIfEmpty(0).Max());
                int worst = -1;
                double worstDiff = -1;
                for (int k = 0; k < indices.Length; k++)
                {
                    double diff = Math.Abs(a[indices[k]] - numeric[k]);
                    if (double.IsNaN(diff)) diff = double.PositiveInfinity;
                    if (diff > worstDiff) { worstDiff = diff; worst = k; }
                }
                if (worst < 0) continue;
                var err = new ParameterError(p, worstDiff / scale, indices[worst], Position(indices[worst], dims),
                    a[indices[worst]], numeric[worst], indices.Length, n);
                errors.Add(err);
                if (throwOnMismatch && !(err.Error <= tolerance))
                    throw new GradientCheckException(string.Create(CultureInfo.InvariantCulture,
                        $"{context}: parameter '{p}' element {err.WorstIndex} {err.WorstPosition}: analytic {err.Analytic:r} vs numeric {err.Numeric:r}; " +
                        $"error {err.Error:e3} > tolerance {tolerance:g3} (eps {eps:g3}, {indices.Length} of {n} elements checked)."));
            }
        }
        return new FdReport(op, name, seed, tolerance, eps, analyticLoss, errors, analytic, backward);
    }

    /// <summary>Creates a CPU session; a failure names the check.</summary>
    public static InferenceSession CreateSession(Model model, string context, string what)
    {
        try
        {
            // Fused ops are lowered to standard ops first, as the training session does.
            if (model.Graph.Nodes.Any(Losses.FusedResponseHead.Is))
            {
                model = model.Clone("lowered");
                Losses.FusedResponseHead.Lower(model, chunkRows: 2);
            }
            return SessionFactory.Create(model);
        }
        catch (Exception e) { throw new GradientCheckException($"{context}: ONNX Runtime rejected the {what} graph: {e.Message}", e); }
    }

    private static IDisposableReadOnlyCollection<OrtValue> RunSession(InferenceSession session, List<string> names, List<OrtValue> values, string[] outputs, string context, string what)
    {
        try
        {
            using var ro = new RunOptions();
            return session.Run(ro, names, values, outputs);
        }
        catch (Exception e) { throw new GradientCheckException($"{context}: running the {what} graph failed: {e.Message}", e); }
    }

    /// <summary>The elements of a float, double or float16 tensor as doubles.</summary>
    public static double[] ReadDoubles(OrtValue v)
    {
        var info = v.GetTensorTypeAndShape();
        return info.ElementDataType switch
        {
            Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Double => v.GetTensorDataAsSpan<double>().ToArray(),
            Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float => [.. v.GetTensorDataAsSpan<float>().ToArray().Select(f => (double)f)],
            var t => throw new InvalidOperationException($"expected a float or double tensor, got {t}."),
        };
    }

    /// <summary>The type and concrete shape of an output, from shape inference or, failing that, one run.</summary>
    private static (long[] Dims, ElementType Type) OutputTypeAndShape(Model model, string output, string context)
    {
        var probe = Model.FromBytes(model.ToBytes(), displayName: "fd shape probe");
        ShapeInference.Run(probe);
        var y = probe.Graph.GetValue(output);
        if (y.Shape is { } s && y.ElementType is ElementType.Double or ElementType.Float && s.Dims.All(d => d.Value is not null))
            return ([.. s.Dims.Select(d => d.Value!.Value)], y.ElementType);
        using var session = CreateSession(probe, context, "forward");
        using var results = RunSession(session, [], [], [output], context, "forward");
        var info = results[0].GetTensorTypeAndShape();
        var type = info.ElementDataType == Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Double ? ElementType.Double : ElementType.Float;
        return (info.Shape, type);
    }

    private static int[] Sample(int n, int count, Random rng)
    {
        var chosen = new SortedSet<int>();
        while (chosen.Count < count) chosen.Add(rng.Next(n));
        return [.. chosen];
    }

    /// <summary>A flat index as a multi-dimensional position, e.g. <c>[1, 0, 3]</c>.</summary>
    public static string Position(int flat, long[] dims)
    {
        var pos = new long[dims.Length];
        long rest = flat;
        for (int d = dims.Length - 1; d >= 0; d--)
        {
            pos[d] = dims[d] == 0 ? 0 : rest % dims[d];
            rest = dims[d] == 0 ? 0 : rest / dims[d];
        }
        return "[" + string.Join(", ", pos) + "]";
    }
}
