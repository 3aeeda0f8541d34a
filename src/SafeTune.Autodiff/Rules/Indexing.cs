using SafeTune.Onnx;

namespace SafeTune.Autodiff.Rules;

/// <summary>How embedding (Gather) gradients accumulate repeated indices.</summary>
public enum EmbeddingGradient
{
    /// <summary>ScatterND with reduction=add (opset 16+), falling back to <see cref="OneHotMatMul"/> below opset 16.</summary>
    ScatterAdd,
    /// <summary>OneHot + MatMul: no scatter with reduction, for DirectML (which runs those on the CPU).</summary>
    OneHotMatMul,
}

/// <summary>
/// Gather on any axis (embeddings are axis 0): the data gradient adds every gathered row's gradient back at its index,
/// so repeated indices accumulate. Negative indices are wrapped first.
/// </summary>
internal sealed class GatherGrad : IGradientRule
{
    public void Build(GradientContext c)
    {
        if (!c.NeedGI(0)) return;
        var b = c.B;
        var data = c.I(0);
        int rank = c.RankOf(data);
        long axis = GradientContext.NormalizeAxis(c.Attr("axis", 0L), rank);
        var g = c.GO(0)!;
        // Move the gathered axis to the front: data (D0, rest...) and g (indices..., rest...).
        long[] toFront = [axis, .. Enumerable.Range(0, rank).Where(i => i != axis).Select(i => (long)i)];
        var dataFront = axis == 0 ? data : b.Transpose(data, toFront);
        var frontShape = b.ShapeOf(dataFront);
        var rows = b.Slice(frontShape, [0], [1], [0]);                      // (1): size of the gathered axis
        var rest = b.Slice(frontShape, [1], [long.MaxValue], [0]);           // trailing dims
        var indices = Wrapped(b, c.I(1), b.Squeeze(rows, 0));
        int idxRank = c.RankOf(c.I(1));
        Value gFront = g;
        if (axis != 0)
        {
            // g is (before..., indices..., after...): bring the indices dims to the front.
            int gRank = rank - 1 + idxRank;
            var perm = Enumerable.Range((int)axis, idxRank).Concat(Enumerable.Range(0, (int)axis)).Concat(Enumerable.Range((int)axis + idxRank, gRank - (int)axis - idxRank)).Select(i => (long)i).ToArray();
            gFront = b.Transpose(g, perm);
        }
        var flatIdx = b.Reshape(indices, -1);                                // (N)
        var updates = b.Reshape(gFront, b.Concat(0, b.Ints(-1), rest));     // (N, rest...)
        bool scatter = c.Options.EmbeddingGradient == EmbeddingGradient.ScatterAdd && c.Opset >= 16;
        Value gradFront;
        if (scatter)
        {
            var zeros = b.Op("ConstantOfShape", [frontShape], Onnx.Attribute.Of("value", SplitGrad.ZeroTensor(data.ElementType)));
            gradFront = b.Op("ScatterND", [zeros, b.Unsqueeze(flatIdx, 1), updates], Onnx.Attribute.Of("reduction", "add"));
        }
        else
        {
            var hot = b.Op("OneHot", [flatIdx, rows, b.Constant(TensorData.Vector("values", 0f, 1f))], Onnx.Attribute.Of("axis", -1L)); // (N, D0)
            if (data.ElementType != ElementType.Float) hot = b.Cast(hot, data.ElementType);
            var updates2 = b.Reshape(updates, b.Concat(0, b.Slice(b.ShapeOf(updates), [0], [1], [0]), b.Ints(-1)));
            gradFront = b.Reshape(b.Gemm(hot, updates2, transA: true), frontShape);
        }
        if (axis != 0)
        {
            var back = new long[rank];
            for (int i = 0; i < rank; i++) back[toFront[i]] = i;
            gradFront = b.Transpose(gradFront, back);
        }
        c.SetGI(0, gradFront);
    }

    internal static Value Wrapped(GraphBuilder b, Value indices, Value size)
    {
        var idx = indices.ElementType == ElementType.Int64 ? indices : b.Cast(indices, ElementType.Int64);
        var negative = b.Op("Less", idx, b.ScalarInt(0));
        return b.Where(negative, b.Add(idx, size), idx);
    }
}

/// <summary>
/// GatherElements: scatter the gradient back along the axis. Repeated indices accumulate with reduction=add from
/// opset 16; below that each position must be gathered at most once (true of the loss's label pick).
/// </summary>
internal sealed class GatherElementsGrad : IGradientRule
{
    public void Build(GradientContext c)
    {
        if (!c.NeedGI(0)) return;
        var b = c.B;
        var data = c.I(0);
        int rank = c.RankOf(data);
        long axis = GradientContext.NormalizeAxis(c.Attr("axis", 0L), rank);
        var size = b.Squeeze(b.Slice(b.ShapeOf(data), [axis], [axis + 1], [0]), 0);
        var idx = GatherGrad.Wrapped(b, c.I(1), size);
        var zeros = b.Op("ConstantOfShape", [b.ShapeOf(data)], Onnx.Attribute.Of("value", SplitGrad.ZeroTensor(data.ElementType)));
        Onnx.Attribute[] attrs = c.Opset >= 16
            ? [Onnx.Attribute.Of("axis", axis), Onnx.Attribute.Of("reduction", "add")]
            : [Onnx.Attribute.Of("axis", axis)];
        c.SetGI(0, b.Op("ScatterElements", [zeros, idx, c.GO(0)!], attrs));
    }
}
