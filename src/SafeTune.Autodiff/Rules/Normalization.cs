using SafeTune.Onnx;

namespace SafeTune.Autodiff.Rules;

/// <summary>Softmax on any axis (opset 13+ semantics): dx = y * (g - sum(g*y, axis)).</summary>
internal sealed class SoftmaxGrad : IGradientRule
{
    public void Build(GradientContext c)
    {
        if (!c.NeedGI(0)) return;
        if (c.Opset < 13) throw new GradientException($"{c.Node.Describe()}: Softmax before opset 13 (2-D coercion) is not supported.");
        var b = c.B;
        var y = c.O(0);
        var g = c.GO(0)!;
        long axis = c.Attr("axis", -1L);
        var dot = b.ReduceSum(b.Mul(g, y), [axis]);
        c.SetGI(0, b.Mul(y, b.Sub(g, dot)));
    }
}

/// <summary>LogSoftmax on any axis (opset 13+): dx = g - exp(y) * sum(g, axis).</summary>
internal sealed class LogSoftmaxGrad : IGradientRule
{
    public void Build(GradientContext c)
    {
        if (!c.NeedGI(0)) return;
        if (c.Opset < 13) throw new GradientException($"{c.Node.Describe()}: LogSoftmax before opset 13 (2-D coercion) is not supported.");
        var b = c.B;
        var g = c.GO(0)!;
        long axis = c.Attr("axis", -1L);
        c.SetGI(0, b.Sub(g, b.Mul(b.Exp(c.O(0)), b.ReduceSum(g, [axis]))));
    }
}

/// <summary>
/// LayerNormalization (opset 17) from its Mean and InvStdDev outputs: with xhat = (x - mean) * invstd and
/// h = g * scale, dx = invstd * (h - mean(h) - xhat * mean(h * xhat)); dscale = sum(g * xhat); dbias = sum(g).
/// </summary>
internal sealed class LayerNormalizationGrad : IGradientRule
{
    public void Build(GradientContext c)
    {
        var b = c.B;
        var x = c.I(0);
        var g = c.GO(0)!;
        int rank = c.RankOf(x);
        long axis = GradientContext.NormalizeAxis(c.Attr("axis", -1L), rank);
        var stash = (ElementType)c.Attr("stash_type", 1L);
        var mean = c.EnsureOutput(1, stash);
        var invStd = c.EnsureOutput(2, stash);
        // The statistics are kept in the stash type (float); bring them to the input's type.
        if (x.ElementType != stash && x.ElementType != ElementType.Undefined)
        {
            mean = b.Cast(mean, x.ElementType);
            invStd = b.Cast(invStd, x.ElementType);
        }
        long[] normAxes = [.. Enumerable.Range((int)axis, rank - (int)axis).Select(i => (long)i)];
        long[] batchAxes = [.. Enumerable.Range(0, (int)axis).Select(i => (long)i)];
        var xhat = b.Mul(b.Sub(x, mean), invStd);
        if (c.NeedGI(0))
        {
            var h = b.Mul(g, c.I(1));
            var term = b.Sub(b.Sub(h, b.ReduceMean(h, normAxes)), b.Mul(xhat, b.ReduceMean(b.Mul(h, xhat), normAxes)));
            c.SetGI(0, b.Mul(invStd, term));
        }
        if (c.NeedGI(1)) c.SetGI(1, SumTo(c, b.Mul(g, xhat), batchAxes, 1));
        if (c.NeedGI(2) && c.OptionalI(2) is not null) c.SetGI(2, SumTo(c, g, batchAxes, 2));
    }

    private static Value SumTo(GradientContext c, Value v, long[] batchAxes, int input)
    {
        var summed = batchAxes.Length == 0 ? v : c.B.ReduceSum(v, batchAxes, keepDims: false);
        return c.B.Reshape(summed, c.B.ShapeOf(c.I(input)));
    }
}

/// <summary>ReduceSum / ReduceMean: broadcast the gradient back over the reduced axes (divided by the count for the mean).</summary>
internal sealed class ReduceGrad(bool mean) : IGradientRule
{
    public void Build(GradientContext c)
    {
        if (!c.NeedGI(0)) return;
        var b = c.B;
        var x = c.I(0);
        int rank = c.RankOf(x);
        bool axesAsInput = c.Node.OpType == "ReduceSum" ? c.Opset >= 13 : c.Opset >= 18;
        long[]? axes = axesAsInput
            ? (c.OptionalI(1) is { } a ? c.ConstantInts(a) : null)
            : c.Node.GetInts("axes")?.ToArray();
        if (axes is { Length: 0 }) axes = null;
        if (axes is null && c.Attr("noop_with_empty_axes", 0L) != 0) { c.SetGI(0, c.GO(0)!); return; }
        var all = axes?.Select(a => GradientContext.NormalizeAxis(a, rank)).Order().ToArray() ?? [.. Enumerable.Range(0, rank).Select(i => (long)i)];
        var g = c.GO(0)!;
        if (c.Attr("keepdims", 1L) == 0) g = b.Unsqueeze(g, all);
        var expanded = b.Expand(g, b.ShapeOf(x));
        if (!mean) { c.SetGI(0, expanded); return; }
        var count = b.Div(b.Cast(b.Op("Size", x), x.ElementType), b.Cast(b.Op("Size", c.O(0)), x.ElementType));
        c.SetGI(0, b.Div(expanded, count));
    }
}
