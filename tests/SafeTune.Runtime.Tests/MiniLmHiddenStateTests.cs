using SafeTune.Onnx.Passes;
using SafeTune.Runtime;
using SafeTune.Tests.Common;
using SafeTune.TestSupport;
using Xunit.Abstractions;

namespace SafeTune.Runtime.Tests;

public sealed class MiniLmHiddenStateTests(ITestOutputHelper output)
{
    private const int Batch = 2, Sequence = 9;

    // "[CLS] the quick brown fox jumps over the [SEP]" and a shorter, padded "[CLS] hello world [SEP]".
    private static readonly long[] Ids =
    [
        101, 1996, 4248, 2829, 4419, 14523, 2058, 1996, 102,
        101, 7592, 2088, 102, 0, 0, 0, 0, 0,
    ];
    private static readonly long[] Mask =
    [
        1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 1, 1, 1, 0, 0, 0, 0, 0,
    ];

    private static Dictionary<string, (long[] Data, long[] Shape)> Inputs() => new()
    {
        ["input_ids"] = (Ids, [Batch, Sequence]),
        ["attention_mask"] = (Mask, [Batch, Sequence]),
        ["token_type_ids"] = (new long[Batch * Sequence], [Batch, Sequence]),
    };

    [Fact]
    public void ExposesSixLayersWithoutChangingTheModelOutputs()
    {
        var model = MiniLm.Load();
        var originalOutputs = model.Graph.Outputs.Select(o => o.Name).ToArray();
        Assert.Contains("last_hidden_state", originalOutputs);

        var pass = new ExposeHiddenStatesPass();
        PassRunner.Run(model, pass);
        var located = pass.Located;
        Assert.Equal(MiniLm.Layers, located.Count);
        Assert.Equal(Enumerable.Range(0, MiniLm.Layers), located.Select(h => h.Layer));
        Assert.Equal(MiniLm.Layers, located.Select(h => h.Tensor.Name).Distinct().Count());
        // The model's own outputs keep their order and come first.
        Assert.Equal(originalOutputs, model.Graph.Outputs.Take(originalOutputs.Length).Select(o => o.Name));
        Assert.All(located, h => Assert.True(h.Tensor.IsGraphOutput));

        // Blocks 0..4 hand their output to the next block's query, key and value projections.
        foreach (var h in located.Take(MiniLm.Layers - 1))
            Assert.True(h.Tensor.Uses.Count(u => u.Node.OpType == "MatMul") >= 3, $"layer {h.Layer} output '{h.Tensor.Name}' does not feed the next block's projections");

        using var original = SessionFactory.Create(MiniLm.ModelBytes);
        using var exposed = SessionFactory.Create(model);
        var before = OrtRun.Inputs(original, Inputs());
        var after = OrtRun.Inputs(exposed, Inputs());

        // The model's own outputs (last_hidden_state and the pooled output) are kept. With ORT's extended fusions
        // (ORT_ENABLE_ALL, the default) an intermediate that is a graph output blocks some fusions, so the results
        // agree to float rounding only; ExposedOutputsAreBitIdenticalWithoutFusions checks exact equality.
        Assert.Equal(originalOutputs, original.OutputNames);
        Assert.True(originalOutputs.Length >= 2, "expected last_hidden_state and a pooled output");
        foreach (var name in originalOutputs)
        {
            Assert.Equal(before[name].Shape, after[name].Shape);
            double d = OrtRun.MaxAbsDiff(before[name].Data, after[name].Data);
            output.WriteLine($"ORT_ENABLE_ALL: max |{name} exposed - original| = {d:E3}");
            Assert.True(d <= 1e-4, $"output '{name}' changed by {d} after exposing hidden states");
        }
        Assert.Equal([Batch, Sequence, MiniLm.Width], before["last_hidden_state"].Shape);

        var layers = located.Select(h => after[h.Tensor.Name]).ToArray();
        foreach (var l in layers)
        {
            Assert.Equal([Batch, Sequence, MiniLm.Width], l.Shape);
            Assert.All(l.Data, v => Assert.True(float.IsFinite(v)));
        }

        // The last block's output is the model's last_hidden_state.
        Assert.True(OrtRun.BitEqual(layers[^1].Data, after["last_hidden_state"].Data), "last exposed layer differs from last_hidden_state");
        Assert.True(OrtRun.MaxAbsDiff(layers[^1].Data, before["last_hidden_state"].Data) <= 1e-4);

        // Consecutive layers are different tensors (the locator did not return one value several times).
        for (int i = 1; i < layers.Length; i++)
        {
            double d = OrtRun.MaxAbsDiff(layers[i - 1].Data, layers[i].Data);
            output.WriteLine($"max |layer {i} - layer {i - 1}| = {d:F4}");
            Assert.True(d > 1e-2, $"layers {i - 1} and {i} are (nearly) equal: max diff {d}");
        }
    }

    [Theory]
    [InlineData(Microsoft.ML.OnnxRuntime.GraphOptimizationLevel.ORT_DISABLE_ALL)]
    [InlineData(Microsoft.ML.OnnxRuntime.GraphOptimizationLevel.ORT_ENABLE_BASIC)]
    public void ExposedOutputsAreBitIdenticalWithoutFusions(Microsoft.ML.OnnxRuntime.GraphOptimizationLevel level)
    {
        var config = new SessionConfig { OptimizationLevel = level };
        var model = MiniLm.Load();
        PassRunner.Run(model, new ExposeHiddenStatesPass());
        using var original = SessionFactory.Create(MiniLm.ModelBytes, config);
        using var exposed = SessionFactory.Create(model, config);
        var before = OrtRun.Inputs(original, Inputs());
        var after = OrtRun.Inputs(exposed, Inputs());
        Assert.Equal(MiniLm.Layers + original.OutputNames.Count - 1, exposed.OutputNames.Count);
        foreach (var name in original.OutputNames)
            Assert.True(OrtRun.BitEqual(before[name].Data, after[name].Data), $"{level}: output '{name}' changed after exposing hidden states");
    }

    [Fact]
    public void ReserializedUnmodifiedModelIsBitIdenticalAtFullOptimization()
    {
        using var original = SessionFactory.Create(MiniLm.ModelBytes);
        using var reserialized = SessionFactory.Create(MiniLm.Load());
        var before = OrtRun.Inputs(original, Inputs());
        var after = OrtRun.Inputs(reserialized, Inputs());
        foreach (var name in original.OutputNames)
            Assert.True(OrtRun.BitEqual(before[name].Data, after[name].Data), $"output '{name}' changed by parsing and re-serializing the model");
    }
}
