using SafeTune.Models.Decoders;
using SafeTune.Onnx;
using SafeTune.Runtime;
using SafeTune.Tests.Common;

namespace SafeTune.Models.Tests;

public sealed class LlamaGraphTests
{
    private static readonly Lazy<Model> TinySeed0 = new(() => LlamaGraph.Build(LlamaConfig.Tiny, seed: 0));

    private static LlamaConfig Small(int heads, int kvHeads) => new()
    {
        VocabSize = 64, HiddenSize = 32, Layers = 2, Heads = heads, KeyValueHeads = kvHeads, IntermediateSize = 48,
    };

    private static Dictionary<string, TensorData> Weights(Model m) =>
        m.Graph.Initializers.ToDictionary(v => v.Name, v => v.Initializer!, StringComparer.Ordinal);

    [Fact]
    public void TinyHasTheConfiguredParameterCount()
    {
        var model = TinySeed0.Value;
        long floats = model.Graph.Initializers.Select(v => v.Initializer!).Where(t => t.ElementType == ElementType.Float).Sum(t => t.ElementCount);
        Assert.Equal(3_950_848L, LlamaConfig.Tiny.ParameterCount);
        Assert.Equal(LlamaConfig.Tiny.ParameterCount, floats);
        // Tied: the LM head reads the embedding table, there is no separate lm_head weight.
        Assert.Null(model.Graph.FindInitializer("lm_head.weight"));
        Assert.NotNull(model.Graph.FindInitializer("model.embed_tokens.weight"));
        Assert.Equal([4096L, 256L], model.Graph.FindInitializer("model.embed_tokens.weight")!.Initializer!.Dims);
        Assert.Equal([688L, 256L], model.Graph.FindInitializer("model.layers.3.mlp.gate_proj.weight")!.Initializer!.Dims);
        Assert.Equal([128L, 256L], model.Graph.FindInitializer("model.layers.3.self_attn.k_proj.weight")!.Initializer!.Dims);
    }

    [Fact]
    public void SameSeedGivesIdenticalWeightsAndAnotherSeedDifferentOnes()
    {
        var a = Weights(TinySeed0.Value);
        var b = Weights(LlamaGraph.Build(LlamaConfig.Tiny, seed: 0));
        var c = Weights(LlamaGraph.Build(LlamaConfig.Tiny, seed: 1));
        Assert.Equal(a.Keys, b.Keys);
        Assert.Equal(a.Keys, c.Keys);
        foreach (var (name, t) in a)
        {
            Assert.True(t.Bytes.SequenceEqual(b[name].Bytes), $"seed 0 gave different bytes for '{name}'");
            if (t.Dims.Length == 2)
                Assert.False(t.Bytes.SequenceEqual(c[name].Bytes), $"seeds 0 and 1 gave the same '{name}'");
            else
                Assert.All(t.AsSpan<float>().ToArray(), v => Assert.Equal(1f, v)); // norm weights start at one
        }
        // The random matrices look like N(0, 0.02).
        var q = a["model.layers.0.self_attn.q_proj.weight"].ToDoubles();
        double mean = q.Average(), std = Math.Sqrt(q.Select(v => (v - mean) * (v - mean)).Average());
        Assert.InRange(mean, -1e-3, 1e-3);
        Assert.InRange(std, 0.019, 0.021);
    }

    [Fact]
    public void UsesOnlyTheDefaultDomain()
    {
        var model = TinySeed0.Value;
        Assert.Equal([""], model.Opsets.Keys);
        Assert.Equal(17, model.DefaultOpset);
        Assert.All(model.Graph.AllNodes(), n => Assert.Equal("", n.Domain));
        Assert.Equal(["input_ids"], model.Graph.Inputs.Where(v => !v.IsInitializer).Select(v => v.Name));
        Assert.Equal(["logits"], model.Graph.Outputs.Select(v => v.Name));
        Assert.Equal("[batch, sequence, 4096]", model.Graph.Outputs[0].Shape?.ToString());
    }

    [Fact]
    public void TinyRunsAndIsCausal()
    {
        const int batch = 2, sequence = 16, vocab = 4096;
        using var session = SessionFactory.Create(TinySeed0.Value);
        var ids = OrtRun.RandomIds(3, batch * sequence, vocab);
        var logits = OrtRun.Ids(session, ids, batch, sequence)["logits"];
        Assert.Equal([batch, sequence, vocab], logits.Shape);
        Assert.All(logits.Data, v => Assert.True(float.IsFinite(v)));
        Assert.True(logits.Data.Max(Math.Abs) > 1e-3, "logits are all (nearly) zero");

        var changed = (long[])ids.Clone();
        for (int r = 0; r < batch; r++) changed[r * sequence + sequence - 1] = (ids[r * sequence + sequence - 1] + 1) % vocab;
        var after = OrtRun.Ids(session, changed, batch, sequence)["logits"];

        for (int r = 0; r < batch; r++)
        {
            int row = r * sequence * vocab;
            var earlierBefore = logits.Data.AsSpan(row, (sequence - 1) * vocab).ToArray();
            var earlierAfter = after.Data.AsSpan(row, (sequence - 1) * vocab).ToArray();
            Assert.True(OrtRun.BitEqual(earlierBefore, earlierAfter), $"row {r}: changing the last token changed earlier positions");
            var lastBefore = logits.Data.AsSpan(row + (sequence - 1) * vocab, vocab);
            var lastAfter = after.Data.AsSpan(row + (sequence - 1) * vocab, vocab);
            Assert.True(OrtRun.MaxAbsDiff(lastBefore, lastAfter) > 1e-4, $"row {r}: changing the last token did not change its logits");
        }
    }

    [Theory]
    [InlineData(4, 2)] // grouped-query attention
    [InlineData(4, 1)] // multi-query attention
    [InlineData(4, 4)] // multi-head attention
    public void AttentionVariantsRun(int heads, int kvHeads)
    {
        var config = Small(heads, kvHeads);
        var model = LlamaGraph.Build(config, seed: 7);
        Assert.Equal(config.ParameterCount, model.Graph.Initializers.Sum(v => v.Initializer!.ElementCount));
        Assert.Equal([(long)kvHeads * config.HeadDim, 32L], model.Graph.FindInitializer("model.layers.1.self_attn.v_proj.weight")!.Initializer!.Dims);
        using var session = SessionFactory.Create(model);
        var logits = OrtRun.Ids(session, OrtRun.RandomIds(2, 2 * 5, 64), 2, 5)["logits"];
        Assert.Equal([2, 5, 64], logits.Shape);
        Assert.All(logits.Data, v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void GroupedQueryAttentionEqualsMultiHeadWithRepeatedKeyValueHeads()
    {
        // Repeating each shared key/value head for its query group must give the very same model as GQA.
        var gqaConfig = Small(4, 2);
        var gqa = LlamaGraph.Build(gqaConfig, seed: 11);
        var weights = Weights(gqa);
        int hd = gqaConfig.HeadDim, rep = gqaConfig.Heads / gqaConfig.KeyValueHeads, d = gqaConfig.HiddenSize;
        var mhaWeights = new Dictionary<string, TensorData>(weights, StringComparer.Ordinal);
        foreach (var (name, t) in weights)
        {
            if (!name.EndsWith(".k_proj.weight", StringComparison.Ordinal) && !name.EndsWith(".v_proj.weight", StringComparison.Ordinal)) continue;
            var src = t.AsSpan<float>();
            var dst = new float[gqaConfig.Heads * hd * d];
            for (int h = 0; h < gqaConfig.Heads; h++)
                src.Slice(h / rep * hd * d, hd * d).CopyTo(dst.AsSpan(h * hd * d));
            mhaWeights[name] = TensorData.Create<float>(name, [gqaConfig.Heads * hd, d], dst);
        }
        var mha = LlamaGraph.Build(gqaConfig with { KeyValueHeads = gqaConfig.Heads }, mhaWeights);

        var ids = OrtRun.RandomIds(4, 2 * 6, 64);
        using var s1 = SessionFactory.Create(gqa);
        using var s2 = SessionFactory.Create(mha);
        var a = OrtRun.Ids(s1, ids, 2, 6)["logits"].Data;
        var b = OrtRun.Ids(s2, ids, 2, 6)["logits"].Data;
        Assert.True(OrtRun.MaxAbsDiff(a, b) <= 1e-5, $"GQA and the equivalent MHA differ by {OrtRun.MaxAbsDiff(a, b)}");
    }

    [Fact]
    public void ValidateRejectsHiddenSizeNotDivisibleByHeads()
    {
        var config = Small(4, 2) with { HiddenSize = 30 };
        var e = Assert.Throws<UserInputException>(config.Validate);
        Assert.Contains("30", e.Message, StringComparison.Ordinal);
        Assert.Contains("4 heads", e.Message, StringComparison.Ordinal);
        var fromBuild = Assert.Throws<UserInputException>(() => LlamaGraph.Build(config));
        Assert.Equal(e.Message, fromBuild.Message);

        var kv = Assert.Throws<UserInputException>((Small(4, 3)).Validate);
        Assert.Contains("3 key/value heads", kv.Message, StringComparison.Ordinal);
        Assert.Throws<UserInputException>((Small(4, 2) with { Layers = 0 }).Validate);
        Small(4, 2).Validate();
        LlamaConfig.Tiny.Validate();
    }

    [Fact]
    public void MissingWeightIsNamed()
    {
        var weights = LlamaGraphFixtureTests.FixtureWeights();
        Assert.True(weights.Remove("model.layers.1.mlp.up_proj.weight"));
        var e = Assert.Throws<KeyNotFoundException>(() => LlamaGraph.Build(LlamaGraphFixtureTests.FixtureConfig(), weights));
        Assert.Contains("model.layers.1.mlp.up_proj.weight", e.Message, StringComparison.Ordinal);

        var norms = LlamaGraphFixtureTests.FixtureWeights();
        Assert.True(norms.Remove("model.norm.weight"));
        var n = Assert.Throws<KeyNotFoundException>(() => LlamaGraph.Build(LlamaGraphFixtureTests.FixtureConfig(), norms));
        Assert.Contains("model.norm.weight", n.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void WrongShapeNamesTheWeightAndBothShapes()
    {
        var weights = LlamaGraphFixtureTests.FixtureWeights();
        const string name = "model.layers.0.self_attn.k_proj.weight";
        var k = weights[name];
        Assert.Equal([16L, 32L], k.Dims);
        weights[name] = new TensorData(name, ElementType.Float, [32, 16], k.Bytes.ToArray()); // transposed layout
        var e = Assert.Throws<UserInputException>(() => LlamaGraph.Build(LlamaGraphFixtureTests.FixtureConfig(), weights));
        Assert.Contains(name, e.Message, StringComparison.Ordinal);
        Assert.Contains("[32, 16]", e.Message, StringComparison.Ordinal);
        Assert.Contains("[16, 32]", e.Message, StringComparison.Ordinal);
    }
}
