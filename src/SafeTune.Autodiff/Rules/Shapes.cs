using SafeTune.Onnx;

namespace SafeTune.Autodiff.Rules;

/// <summary>Transpose: transpose the gradient by the inverse permutation.</summary>
internal sealed class TransposeGrad : IGradientRule
{
    public void Build(GradientContext c)
    {
        if (!c.NeedGI(0)) return;
        int rank = c.RankOf(c.I(0));
        var perm = c.Node.GetInts("perm")?.ToArray() ?? [.. Enumerable.Range(0, rank).Reverse().Select(i => (long)i)];
        var inverse = new long[perm.Length];
        for (int i = 0; i < perm.Length; i++) inverse[perm[i]] = i;
        c.SetGI(0, c.B.Transpose(c.GO(0)!, inverse));
    }
}

/// <summary>Concat: split the gradient into the inputs' sizes along the axis (sizes read at run time).</summary>
internal sealed class ConcatGrad : IGradientRule
{
    public void Build(GradientContext c)
    {
        var b = c.B;
        int rank = c.RankOf(c.O(0));
        long axis = GradientContext.NormalizeAxis(c.Attr("axis", 0L), rank);
        var inputs = c.Node.Inputs.OfType<Value>().ToArray();
        if (c.Opset < 13) throw new GradientException($"{c.Node.Describe()}: Concat gradients need opset 13 or newer.");
        var sizes = b.Concat(0, [.. inputs.Select(v => b.Slice(b.ShapeOf(v), [axis], [axis + 1], [0]))]);
        var node = b.NewNode("Split", [c.GO(0)!, sizes], inputs.Length, [Onnx.Attribute.Of("axis", axis)]);
        for (int i = 0; i < inputs.Length; i++) c.SetGI(i, node.Outputs[i]);
    }
}

/// <summary>Split: concatenate the output gradients, with zeros for outputs that receive none.</summary>
internal sealed class SplitGrad : IGradientRule
{
    public void Build(GradientContext c)
    {
        if (!c.NeedGI(0)) return;
        var b = c.B;
        int rank = c.RankOf(c.I(0));
        long axis = GradientContext.NormalizeAxis(c.Attr("axis", 0L), rank);
        var parts = c.Node.Outputs.Select((o, i) => c.GO(i)
            ?? b.Op("ConstantOfShape", [b.ShapeOf(o)], Onnx.Attribute.Of("value", ZeroTensor(o.ElementType)))).ToArray();
        c.SetGI(0, b.Concat(axis, parts));
    }

    internal static TensorData ZeroTensor(ElementType t) => t switch
    {
        ElementType.Double => TensorData.Vector("value", 0.0),
        ElementType.Float16 => TensorData.Vector("value", (Half)0),
        _ => TensorData.Vector("value", 0f),
    };
}

/// <summary>
/// Slice (any starts, ends, axes and steps, including negative ones): slice a map of flat element indices the same way,
/// then scatter the gradient to those positions of a zero tensor. The positions are distinct, so no reduction is needed
/// and every execution provider runs it.
/// </summary>
internal sealed class SliceGrad : IGradientRule
{
    public void Build(GradientContext c)
    {
        if (!c.NeedGI(0)) return;
        var b = c.B;
        var x = c.I(0);
        var flatSize = b.Reshape(b.Op("Size", x), 1);
        var index = b.Reshape(b.Op("Range", b.ScalarInt(0), b.Op("Size", x), b.ScalarInt(1)), b.ShapeOf(x));
        var sliced = b.Op("Slice", [index, .. c.Node.Inputs.Skip(1)]);
        var zeros = b.Op("ConstantOfShape", [flatSize], Onnx.Attribute.Of("value", SplitGrad.ZeroTensor(x.ElementType)));
        var scattered = b.Op("ScatterElements", [zeros, b.Reshape(sliced, -1), b.Reshape(c.GO(0)!, -1)], Onnx.Attribute.Of("axis", 0L));
        c.SetGI(0, b.Reshape(scattered, b.ShapeOf(x)));
    }
}

/// <summary>Dropout: in training mode the gradient is masked and scaled like the forward; otherwise it passes through.</summary>
internal sealed class DropoutGrad : IGradientRule
{
    public void Build(GradientContext c)
    {
        if (!c.NeedGI(0)) return;
        var b = c.B;
        var g = c.GO(0)!;
        bool training = c.OptionalI(2) is { } t && (t.ConstantData is not { } d || d.ToInt64s()[0] != 0);
        if (!training) { c.SetGI(0, g); return; }
        var mask = c.EnsureOutput(1, ElementType.Bool);
        var ratio = c.OptionalI(1) is { } r ? (r.ElementType == g.ElementType ? r : b.Cast(r, g.ElementType)) : c.ScalarLike(g, 0.5);
        var scale = b.Div(c.ScalarLike(g, 1), b.Sub(c.ScalarLike(g, 1), ratio));
        c.SetGI(0, b.Mul(b.Mul(g, b.Cast(mask, g.ElementType)), scale));
    }
}
