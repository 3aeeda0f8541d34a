using SafeTune.Onnx.Shapes;
using SafeTune.TestSupport;

namespace SafeTune.Onnx.Tests;

public class ShapeInferenceTests
{
    public static TheoryData<string> Names() => Fixtures.DecoderNames();

    private static void ClearShapes(Model m)
    {
        foreach (var n in m.Graph.Nodes)
            foreach (var o in n.Outputs)
                if (!o.IsGraphOutput) { o.Shape = null; o.ElementType = ElementType.Undefined; }
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Exported_decoders_get_batch_sequence_width_shapes(string name)
    {
        var m = Model.Load(Fixtures.ModelPath(name));
        ClearShapes(m);
        ShapeInference.Run(m);
        var expected = Fixtures.Expected(name);
        foreach (var h in expected.GetProperty("hiddenStateNames").EnumerateArray())
            Assert.Equal("[batch, sequence, 32]", m.Graph.GetValue(h.GetString()!).Shape?.ToString());
        // Every MatMul output in the blocks is rank 3 or 4 with known trailing width.
        foreach (var n in m.Graph.Nodes.Where(n => n.OpType == "MatMul"))
        {
            var s = n.Outputs[0].Shape;
            Assert.NotNull(s);
            Assert.False(s![-1].IsUnknown, n.Name);
            Assert.Equal(ElementType.Float, n.Outputs[0].ElementType);
        }
    }

    [Fact]
    public void Shape_arithmetic_in_unfolded_llama_export_resolves_repeat_kv()
    {
        // repeat_kv builds its Expand target from Shape, Gather, Concat, Equal and Where at run time.
        var m = Model.Load(Fixtures.ModelPath("llama_tiny_unfolded"));
        ClearShapes(m);
        ShapeInference.Run(m);
        var expands = m.Graph.Nodes.Where(n => n.OpType == "Expand" && n.Graph == m.Graph).ToList();
        Assert.NotEmpty(expands);
        foreach (var e in expands)
            Assert.Equal("[batch, 2, 2, sequence, 8]", e.Outputs[0].Shape?.ToString());
        var scores = m.Graph.Nodes.Where(n => n.OpType == "Softmax").Select(n => n.Outputs[0].Shape?.ToString());
        Assert.All(scores, s => Assert.Equal("[batch, 4, sequence, sequence]", s));
    }

    [Fact]
    public void MiniLM_layers_are_batch_sequence_384()
    {
        var m = MiniLm.Load();
        ShapeInference.Run(m);
        var softmaxes = m.Graph.Nodes.Where(n => n.OpType == "Softmax").ToList();
        Assert.Equal(6, softmaxes.Count);
        Assert.All(softmaxes, s => Assert.Equal("[batch, 12, sequence, sequence]", s.Outputs[0].Shape?.ToString()));
    }

    [Fact]
    public void Broadcasting_matmul_reshape_and_reductions()
    {
        var b = GraphBuilder.ForNewModel(17);
        var x = b.Input("x", ElementType.Float, Dim.Symbol("B"), Dim.Symbol("T"), 64);
        var w = b.Parameter("w", new float[64 * 16], 64, 16);
        var y = b.MatMul(x, w);                                   // [B, T, 16]
        var heads = b.Reshape(y, 0, 0, 4, -1);                    // [B, T, 4, 4]
        var flat = b.Reshape(y, -1, 16);                          // [B*T, 16]
        var t = b.Transpose(heads, 0, 2, 1, 3);                   // [B, 4, T, 4]
        var att = b.MatMul(t, b.Transpose(t, 0, 1, 3, 2));        // [B, 4, T, T]
        var mean = b.ReduceMean(x, [-1]);                         // [B, T, 1]
        var sum = b.ReduceSum(x, [0, 1], keepDims: false);        // [64]
        var bcast = b.Add(x, b.Parameter("bias", new float[64], 64)); // [B, T, 64]
        var cat = b.Concat(-1, y, y);                             // [B, T, 32]
        var parts = b.Split(x, 2, 16, 48);
        var sl = b.Slice(x, [0], [10], [2], [2]);                 // [B, T, 5]
        var ln = b.LayerNormalization(x, b.Parameter("g", new float[64], 64), null);
        var g = b.Gather(b.Parameter("emb", new float[100 * 8], 100, 8), b.Input("ids", ElementType.Int64, Dim.Symbol("B"), Dim.Symbol("T")));
        ShapeInference.Run(b.Model!);

        Assert.Equal("[B, T, 16]", y.Shape!.ToString());
        Assert.Equal("[B, T, 4, 4]", heads.Shape!.ToString());
        Assert.Equal("[B*T, 16]", flat.Shape!.ToString());
        Assert.Equal("[B, 4, T, T]", att.Shape!.ToString());
        Assert.Equal("[B, T, 1]", mean.Shape!.ToString());
        Assert.Equal("[64]", sum.Shape!.ToString());
        Assert.Equal("[B, T, 64]", bcast.Shape!.ToString());
        Assert.Equal("[B, T, 32]", cat.Shape!.ToString());
        Assert.Equal("[B, T, 16]", parts[0].Shape!.ToString());
        Assert.Equal("[B, T, 48]", parts[1].Shape!.ToString());
        Assert.Equal("[B, T, 5]", sl.Shape!.ToString());
        Assert.Equal("[B, T, 64]", ln.Shape!.ToString());
        Assert.Equal("[B, T, 8]", g.Shape!.ToString());
    }

    [Fact]
    public void Symbolic_dims_multiply_and_divide()
    {
        var bt = SymbolicDim.Multiply(Dim.Symbol("batch"), Dim.Symbol("seq"));
        Assert.Equal("batch*seq", bt.Param);
        Assert.Equal(Dim.Symbol("seq"), SymbolicDim.Divide(bt, Dim.Symbol("batch")));
        Assert.Equal(Dim.Symbol("8*seq"), SymbolicDim.Multiply(Dim.Of(8), Dim.Symbol("seq")));
        Assert.Equal(Dim.Of(4), SymbolicDim.Divide(SymbolicDim.Multiply(Dim.Of(8), Dim.Symbol("s")), Dim.Symbol("2*s")));
        Assert.True(SymbolicDim.Divide(Dim.Symbol("a"), Dim.Symbol("b")).IsUnknown);
        Assert.Equal(Dim.Of(7), SymbolicDim.Broadcast(Dim.Symbol("n"), Dim.Of(7)));
        Assert.Equal(Dim.Symbol("n"), SymbolicDim.Broadcast(Dim.Of(1), Dim.Symbol("n")));
    }
}
