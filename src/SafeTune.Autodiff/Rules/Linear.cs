using SafeTune.Onnx;

namespace SafeTune.Autodiff.Rules;

/// <summary>
/// MatMul with numpy batching and broadcasting: dA = g @ B^T, dB = A^T @ g, each summed back to its operand's shape.
/// A weight shared across the batch (rank-2 B) gets one large product: reshape A and g to 2-D and use Gemm(transA).
/// </summary>
internal sealed class MatMulGrad : IGradientRule
{
    public void Build(GradientContext c)
    {
        var b = c.B;
        Value a = c.I(0), w = c.I(1), g = c.GO(0)!;
        int ra = c.RankOf(a), rw = c.RankOf(w);
        var gShape = c.O(0).Shape;
        if (ra == 1 && rw == 1)
        {
            // A dot product: g is a scalar.
            if (c.NeedGI(0)) c.SetGI(0, b.Mul(g, w));
            if (c.NeedGI(1)) c.SetGI(1, b.Mul(g, a));
            return;
        }
        // Vectors are promoted to matrices as numpy does; the gradient is reshaped back at the end.
        if (ra == 1) { a = b.Unsqueeze(a, 0); g = b.Unsqueeze(g, -2); ra = 2; gShape = Promote(gShape, -2); }
        if (rw == 1) { w = b.Unsqueeze(w, -1); g = b.Unsqueeze(g, -1); rw = 2; gShape = Promote(gShape, -1); }
        if (c.NeedGI(0))
        {
            var da = b.MatMul(g, b.Transpose(w, Swap(rw)));
            c.SetGI(0, b.Reshape(Reduce(c, da, a, gShape), b.ShapeOf(c.I(0))));
        }
        if (c.NeedGI(1))
        {
            Value dw;
            if (rw == 2 && ra > 2)
            {
                var k = b.Gather(b.ShapeOf(a), b.ScalarInt(-1));
                var m = b.Gather(b.ShapeOf(g), b.ScalarInt(-1));
                var a2 = b.Reshape(a, b.Concat(0, b.Ints(-1), b.Unsqueeze(k, 0)));
                var g2 = b.Reshape(g, b.Concat(0, b.Ints(-1), b.Unsqueeze(m, 0)));
                dw = b.Gemm(a2, g2, transA: true);
            }
            else
            {
                dw = Reduce(c, b.MatMul(b.Transpose(a, Swap(ra)), g), w, gShape);
            }
            c.SetGI(1, b.Reshape(dw, b.ShapeOf(c.I(1))));
        }
    }

    private static Shape? Promote(Shape? s, int at) => s is null ? null
        : new Shape(at == -1 ? [.. s.Dims, Dim.Of(1)] : [.. s.Dims.Take(s.Rank - 1), Dim.Of(1), s.Dims[^1]]);

    private static long[] Swap(int rank) => [.. Enumerable.Range(0, rank - 2).Select(i => (long)i), rank - 1, rank - 2];

    // The product has the batch dims of g and the matrix dims of the operand: sum away broadcast batch dims.
    private static Value Reduce(GradientContext c, Value product, Value operand, Shape? gShape)
    {
        if (gShape is null || operand.Shape is null) return product;
        var productShape = new Shape([.. gShape.Dims.Take(gShape.Rank - 2), .. operand.Shape.Dims.Skip(operand.Shape.Rank - 2)]);
        return c.ReduceToShape(product, operand, productShape);
    }
}

/// <summary>Gemm: Y = alpha * A' B' + beta * C, with A' and B' optionally transposed.</summary>
internal sealed class GemmGrad : IGradientRule
{
    public void Build(GradientContext c)
    {
        var b = c.B;
        Value a = c.I(0), w = c.I(1), g = c.GO(0)!;
        bool ta = c.Attr("transA", 0L) != 0, tb = c.Attr("transB", 0L) != 0;
        float alpha = c.Attr("alpha", 1f), beta = c.Attr("beta", 1f);
        if (c.NeedGI(0))
            c.SetGI(0, ta ? b.Gemm(w, g, transA: tb, transB: true, alpha: alpha, beta: 0) : b.Gemm(g, w, transB: !tb, alpha: alpha, beta: 0));
        if (c.NeedGI(1))
            c.SetGI(1, tb ? b.Gemm(g, a, transA: true, transB: ta, alpha: alpha, beta: 0) : b.Gemm(a, g, transA: !ta, alpha: alpha, beta: 0));
        if (c.NeedGI(2) && c.OptionalI(2) is not null)
        {
            var scaled = beta == 1f ? g : b.Mul(g, c.ScalarLike(g, beta));
            c.SetGI(2, c.ReduceToShape(scaled, c.I(2), c.O(0).Shape));
        }
    }
}
