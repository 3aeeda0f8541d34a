using SafeTune.Models.Decoders;
using SafeTune.Onnx;
using SafeTune.Onnx.Passes;
using SafeTune.Runtime;
using SafeTune.Tests.Common;
using Xunit.Abstractions;

namespace SafeTune.Models.Tests;

/// <summary>LlamaGraph with the weights of the PyTorch fixture reproduces PyTorch's numbers.</summary>
public sealed class LlamaGraphFixtureTests(ITestOutputHelper output)
{
    private static FixtureExpectation Expected => FixtureExpectation.Load("llama_tiny_unfolded");

    internal static Dictionary<string, TensorData> FixtureWeights() =>
        Model.Load(Expected.ModelPath).Graph.Initializers.ToDictionary(v => v.Name, v => v.Initializer!, StringComparer.Ordinal);

    internal static LlamaConfig FixtureConfig()
    {
        var c = Expected.Config;
        return new LlamaConfig
        {
            VocabSize = c.GetProperty("vocab").GetInt32(),
            HiddenSize = c.GetProperty("d").GetInt32(),
            Layers = c.GetProperty("n_layers").GetInt32(),
            Heads = c.GetProperty("n_heads").GetInt32(),
            KeyValueHeads = c.GetProperty("n_kv_heads").GetInt32(),
            IntermediateSize = c.GetProperty("ffn").GetInt32(),
            RopeTheta = c.GetProperty("rope_theta").GetDouble(),
            RmsNormEpsilon = 1e-6f,
            TieWordEmbeddings = false,
        };
    }

    [Fact]
    public void FixtureConfigIsTheTinyLlama()
    {
        var config = FixtureConfig();
        Assert.Equal(new LlamaConfig
        {
            VocabSize = 96, HiddenSize = 32, Layers = 2, Heads = 4, KeyValueHeads = 2, IntermediateSize = 64,
            RopeTheta = 10000.0, RmsNormEpsilon = 1e-6f, TieWordEmbeddings = false,
        }, config);
        Assert.Equal(Expected.Parameters, config.ParameterCount);
        Assert.Equal(Expected.Initializers, FixtureWeights().Count);
    }

    [Fact]
    public void BuiltWithFixtureWeightsGivesPyTorchLogits()
    {
        var e = Expected;
        var config = FixtureConfig();
        var weights = FixtureWeights();
        var model = LlamaGraph.Build(config, weights);

        // Every weight of the fixture is used, under its Hub name, with the same bytes.
        var inits = model.Graph.Initializers.ToDictionary(v => v.Name, v => v.Initializer!);
        Assert.Equal(weights.Keys.Order(StringComparer.Ordinal), inits.Keys.Order(StringComparer.Ordinal));
        foreach (var (name, t) in weights) Assert.True(t.Bytes.SequenceEqual(inits[name].Bytes), $"weight '{name}' changed");
        Assert.Equal(e.Parameters, inits.Values.Where(t => t.ElementType == ElementType.Float).Sum(t => t.ElementCount));

        using var session = SessionFactory.Create(model);
        var logits = OrtRun.Ids(session, e.InputIds, e.InputShape[0], e.InputShape[1])["logits"];
        Assert.Equal(e.LogitsShape, logits.Shape);
        double diff = OrtRun.MaxAbsDiff(logits.Data, e.Logits);
        output.WriteLine($"LlamaGraph vs PyTorch: max |logits diff| = {diff:E3}");
        Assert.True(diff <= 1e-4, $"logits differ from PyTorch by {diff}");

        // The same model also runs at another batch and sequence length.
        var other = OrtRun.Ids(session, OrtRun.RandomIds(1, 3 * 11, 96), 3, 11)["logits"];
        Assert.Equal([3, 11, 96], other.Shape);
        Assert.All(other.Data, v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void BuiltWithFixtureWeightsGivesPyTorchHiddenStates()
    {
        var e = Expected;
        var config = FixtureConfig();
        var model = LlamaGraph.Build(config, FixtureWeights());

        var located = HiddenStateLocator.Locate(model);
        Assert.Equal(config.Layers, located.Count);
        for (int i = 0; i < located.Count; i++)
        {
            Assert.Equal(i, located[i].Layer);
            Assert.StartsWith($"/model/layers.{i}/", located[i].Tensor.Name, StringComparison.Ordinal);
            Assert.Equal("Add", located[i].Tensor.Producer?.OpType);
            Assert.Equal(32, located[i].Shape?[-1].Value);
        }

        var names = located.Select(h => h.Tensor.Name).ToArray();
        var result = PassRunner.Run(model, new ExposeValuesPass(names));
        Assert.True(result.Modified);
        Assert.Equal("logits", model.Graph.Outputs[0].Name);

        using var session = SessionFactory.Create(model);
        var outputs = OrtRun.Ids(session, e.InputIds, e.InputShape[0], e.InputShape[1]);
        double diff = 0;
        for (int l = 0; l < names.Length; l++)
        {
            Assert.Equal(e.HiddenStatesShape, outputs[names[l]].Shape);
            diff = Math.Max(diff, OrtRun.MaxAbsDiff(outputs[names[l]].Data, e.HiddenStates[l]));
        }
        double logitsDiff = OrtRun.MaxAbsDiff(outputs["logits"].Data, e.Logits);
        output.WriteLine($"LlamaGraph vs PyTorch: max |hidden-state diff| = {diff:E3}, logits with states exposed = {logitsDiff:E3}");
        Assert.True(diff <= 1e-4, $"hidden states differ from PyTorch by {diff}");
        Assert.True(logitsDiff <= 1e-4, $"logits differ from PyTorch by {logitsDiff}");
    }
}
