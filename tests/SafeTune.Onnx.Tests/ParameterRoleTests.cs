using System.Text.Json;
using SafeTune.Onnx.Inspection;
using SafeTune.Onnx.Passes;
using SafeTune.TestSupport;

namespace SafeTune.Onnx.Tests;

/// <summary>Parameters vs buffers, and tied copies, on torch.onnx exports (tests/fixtures/make_buffer_fit.py) and tiny graphs.</summary>
public sealed class ParameterRoleTests
{
    public static TheoryData<string> TableExports() => ["llama_tables_folded", "llama_tables_unfolded", "llama_tables_static"];

    private static JsonElement TablesFit() =>
        JsonDocument.Parse(File.ReadAllText(Repo.Fixture("models", "llama_tables.fit.json"))).RootElement;

    [Theory]
    [MemberData(nameof(TableExports))]
    public void Rotary_tables_and_the_causal_mask_are_buffers(string name)
    {
        var roles = ParameterRoles.Of(Model.Load(Fixtures.ModelPath(name)));
        var want = TablesFit().GetProperty("buffers").GetProperty(name).EnumerateArray().Select(e => e.GetString()!).ToList();
        var buffers = roles.Where(r => !r.IsParameter).ToList();
        Assert.Equal(want.Order(), buffers.Select(b => b.Name).Order());
        Assert.Equal(2, buffers.Count(b => b.Reason.StartsWith("rotary table", StringComparison.Ordinal)));
        Assert.Single(buffers, b => b.Reason.StartsWith("additive mask", StringComparison.Ordinal) && b.Reason.Contains("Softmax", StringComparison.Ordinal));
        // Every weight of the two blocks: 7 projections each, 2 norms each, the final norm, the embedding and the head.
        Assert.Equal(2 * 7 + 2 * 2 + 3, roles.Count(r => r.IsParameter));
        Assert.Contains(roles, r => r is { Name: "model.embed_tokens.weight", IsParameter: true } && r.Reason.StartsWith("embedding table", StringComparison.Ordinal));
        Assert.Contains(roles, r => r is { Name: "model.norm.weight", IsParameter: true } && r.Reason.StartsWith("normalization scale", StringComparison.Ordinal));
    }

    [Theory]
    [MemberData(nameof(Fixtures.DecoderNames), MemberType = typeof(Fixtures))]
    public void Exports_without_buffers_are_all_parameters(string name)
    {
        var roles = ParameterRoles.Of(Model.Load(Fixtures.ModelPath(name)));
        Assert.All(roles, r => Assert.True(r.IsParameter, $"{r.Name}: {r.Reason}"));
        Assert.Equal(Fixtures.Expected(name).GetProperty("parameters").GetInt64(), roles.Sum(r => r.Elements));
        if (name.StartsWith("gpt2", StringComparison.Ordinal))
        {
            Assert.Contains(roles, r => r.Name == "transformer.wpe.weight" && r.Reason.StartsWith("added to activations", StringComparison.Ordinal));
            Assert.Contains(roles, r => r.Name == "transformer.h.0.attn.c_attn.bias" && r.Reason.StartsWith("bias added after a MatMul", StringComparison.Ordinal));
            Assert.Contains(roles, r => r.Name == "transformer.ln_f.weight" && r.Reason.StartsWith("scale or bias of LayerNormalization", StringComparison.Ordinal));
        }
    }

    [Fact]
    public void Frequencies_feeding_Cos_and_Sin_single_values_and_fill_values_are_buffers()
    {
        // x: (T, 4). emb = positions (T, 1) * inv_freq (1, 4); y = (x * cos(emb) + x * sin(emb)) @ W * scale, masked by a Where.
        var b = GraphBuilder.ForNewModel();
        var x = b.Input("x", ElementType.Float, Dim.Symbol("T"), Dim.Of(4));
        var length = b.Gather(b.ShapeOf(x), b.ScalarInt(0));
        var positions = b.Cast(b.Op("Range", b.ScalarInt(0), length, b.ScalarInt(1)), ElementType.Float);
        var emb = b.Mul(b.Unsqueeze(positions, 1), b.Parameter("inv_freq", [1f, 0.5f, 0.25f, 0.125f], 1, 4));
        var rotated = b.Add(b.Mul(x, b.Cos(emb)), b.Mul(x, b.Sin(emb)));
        var w = b.Parameter("proj.weight", [.. Enumerable.Range(0, 16).Select(i => i * 0.1f)], 4, 4);
        var y = b.Mul(b.MatMul(rotated, w), b.Parameter("scale", [0.5f]));
        var fill = b.Parameter("fill", [-1e9f]);
        var masked = b.Where(b.Op("Greater", y, b.Scalar(0f)), y, fill);
        b.Graph.AddOutput(masked);
        var roles = ParameterRoles.Of(b.Model!).ToDictionary(r => r.Name);
        Assert.False(roles["inv_freq"].IsParameter);
        Assert.StartsWith("rotary frequencies: feeds Cos", roles["inv_freq"].Reason);
        Assert.True(roles["proj.weight"].IsParameter);
        Assert.False(roles["scale"].IsParameter);
        Assert.Equal("single-value constant", roles["scale"].Reason);
        Assert.False(roles["fill"].IsParameter);
    }

    [Fact]
    public void The_folded_GPT2_head_is_found_as_a_transposed_copy_and_retied()
    {
        var model = Model.Load(Fixtures.ModelPath("gpt2_tiny_folded"));
        var ties = TiedCopies.Find(model, ParameterRoles.Parameters(model));
        var tie = Assert.Single(ties);
        Assert.Equal(new TiedCopy("transformer.wte.weight", "onnx::MatMul_288", true), tie);
        int initializers = model.Graph.Initializers.Count(), nodes = model.Graph.Nodes.Count;
        Assert.True(PassRunner.Run(model, new RetieCopiesPass(ties)).Modified);
        Assert.Null(model.Graph.FindInitializer("onnx::MatMul_288"));
        Assert.Equal(initializers - 1, model.Graph.Initializers.Count());
        Assert.Equal(nodes + 1, model.Graph.Nodes.Count);
        var transpose = model.Graph.GetValue("onnx::MatMul_288").Producer!;
        Assert.Equal("Transpose", transpose.OpType);
        Assert.Same(model.Graph.FindInitializer("transformer.wte.weight"), transpose.Inputs[0]);
        Assert.Equal(["Gather", "Transpose"], model.Graph.FindInitializer("transformer.wte.weight")!.Consumers.Select(n => n.OpType).Order());
        // The unfolded export holds the tied matrix once already.
        var unfolded = Model.Load(Fixtures.ModelPath("gpt2_tiny_unfolded"));
        Assert.Empty(TiedCopies.Find(unfolded, ParameterRoles.Parameters(unfolded)));
    }

    [Fact]
    public void Equal_copies_are_tied_but_constant_tensors_are_not()
    {
        var b = GraphBuilder.ForNewModel();
        var x = b.Input("x", ElementType.Float, Dim.Of(2), Dim.Of(3));
        float[] values = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        var a = b.MatMul(x, b.Parameter("a", values, 3, 3));
        var c = b.MatMul(a, b.Parameter("b", values, 3, 3));                              // equal to a
        var t = b.MatMul(c, b.Parameter("t", [1, 4, 7, 2, 5, 8, 3, 6, 9], 3, 3));           // a transposed
        var n1 = b.Mul(b.Parameter("ones1", [1f, 1f, 1f], 3), t);
        var n2 = b.Mul(b.Parameter("ones2", [1f, 1f, 1f], 3), n1);
        b.Graph.AddOutput(n2);
        var ties = TiedCopies.Find(b.Model!, ["a", "b", "t", "ones1", "ones2"]);
        Assert.Equal([new TiedCopy("a", "b", false), new TiedCopy("a", "t", true)], ties.OrderBy(tie => tie.Copy));
        PassRunner.Run(b.Model!, new RetieCopiesPass(ties));
        Assert.Equal(["a", "ones1", "ones2"], b.Model!.Graph.Initializers.Select(v => v.Name).Order());
        Assert.Same(b.Model.Graph.FindInitializer("a"), c.Producer!.Inputs[1]);
    }
}
