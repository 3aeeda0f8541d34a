using SafeTune.Onnx.Passes;
using SafeTune.TestSupport;

namespace SafeTune.Onnx.Tests;

public class HiddenStateLocatorTests
{
    public static TheoryData<string> Names() => Fixtures.DecoderNames();

    [Theory]
    [MemberData(nameof(Names))]
    public void Finds_the_block_outputs_of_torch_exports(string name)
    {
        var m = Model.Load(Fixtures.ModelPath(name));
        var expected = Fixtures.Expected(name).GetProperty("hiddenStateNames").EnumerateArray().Select(e => e.GetString()).ToArray();
        var found = HiddenStateLocator.Locate(m);
        Assert.Equal(expected, found.Select(h => h.Tensor.Name));
        Assert.Equal(Enumerable.Range(0, expected.Length), found.Select(h => h.Layer));
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Finds_them_by_structure_when_node_names_are_gone(string name)
    {
        var m = Model.Load(Fixtures.ModelPath(name));
        var expected = Fixtures.Expected(name).GetProperty("hiddenStateNames").EnumerateArray().Select(e => e.GetString()).ToArray();
        foreach (var n in m.Graph.Nodes) n.Name = "";
        Assert.Equal(expected, HiddenStateLocator.Locate(m).Select(h => h.Tensor.Name));
    }

    [Fact]
    public void Finds_the_six_post_norm_layers_of_pretrained_MiniLM()
    {
        var m = MiniLm.Load();
        var found = HiddenStateLocator.Locate(m);
        Assert.Equal(6, found.Count);
        Assert.Equal("last_hidden_state", found[^1].Tensor.Name);
        Assert.All(found, h => Assert.Equal("[batch, sequence, 384]", h.Shape?.ToString()));
        // In a post-norm encoder each block's output is a LayerNorm result (decomposed: ... Mul, Add bias).
        Assert.All(found, h => Assert.Equal("Add", h.Tensor.Producer!.OpType));
        Assert.All(found, h => Assert.Equal("Mul", h.Tensor.Producer!.Inputs.OfType<Value>().First(v => !v.IsInitializer).Producer!.OpType));
    }

    [Fact]
    public void Graph_without_blocks_gives_no_candidates()
    {
        var b = GraphBuilder.ForNewModel();
        var x = b.Input("x", ElementType.Float, 2, 4);
        b.Output(b.Relu(b.MatMul(x, b.Parameter("w", new float[16], 4, 4))), "y");
        Assert.Empty(HiddenStateLocator.Locate(b.Model!));
        var e = Assert.Throws<OnnxFormatException>(() => PassRunner.Run(b.Model!, new ExposeHiddenStatesPass()));
        Assert.Contains("no transformer blocks", e.Message);
    }

    [Fact]
    public void ExposeValues_adds_outputs_and_reports_modification()
    {
        var m = Model.Load(Fixtures.ModelPath("gpt2_tiny_folded"));
        var names = Fixtures.Expected("gpt2_tiny_folded").GetProperty("hiddenStateNames").EnumerateArray().Select(e => e.GetString()!).ToArray();
        var first = PassRunner.Run(m, new ExposeValuesPass(names));
        Assert.True(first.Modified);
        Assert.Equal(["logits", .. names], m.Graph.Outputs.Select(o => o.Name));
        Assert.False(PassRunner.Run(m, new ExposeValuesPass(names)).Modified);
        var e = Assert.Throws<OnnxFormatException>(() => PassRunner.Run(m, new ExposeValuesPass(["no_such_tensor"])));
        Assert.Contains("'no_such_tensor'", e.Message);
    }
}
