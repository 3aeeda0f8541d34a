using SafeTune.Onnx;
using SafeTune.Onnx.Passes;
using SafeTune.Runtime;
using SafeTune.Tests.Common;
using Xunit.Abstractions;

namespace SafeTune.Runtime.Tests;

public sealed class HiddenStateExposureTests(ITestOutputHelper output)
{
    public static TheoryData<string> Fixtures => new(FixtureExpectation.AllNames);

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void LocatorAndExposeValuesGivePyTorchHiddenStates(string name)
    {
        var e = FixtureExpectation.Load(name);
        var model = Model.Load(e.ModelPath);
        var located = HiddenStateLocator.Locate(model);
        Assert.Equal(e.Layers, located.Count);
        Assert.Equal(Enumerable.Range(0, e.Layers), located.Select(h => h.Layer));
        Assert.Equal(e.HiddenStateNames, located.Select(h => h.Tensor.Name));

        var result = PassRunner.Run(model, new ExposeValuesPass(located.Select(h => h.Tensor.Name)));
        Assert.True(result.Modified);
        Assert.Equal("logits", model.Graph.Outputs[0].Name);
        Assert.Equal(1 + e.Layers, model.Graph.Outputs.Count);

        CheckAgainstTorch(name, e, model, located.Select(h => h.Tensor.Name).ToArray());
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void ExposeHiddenStatesPassGivesPyTorchHiddenStates(string name)
    {
        var e = FixtureExpectation.Load(name);
        var model = Model.Load(e.ModelPath);
        var pass = new ExposeHiddenStatesPass();
        PassRunner.Run(model, pass);
        Assert.Equal(e.Layers, pass.Located.Count);
        Assert.All(pass.Located, h => Assert.True(h.Tensor.IsGraphOutput));

        // The exposed outputs survive serialization with a float type and a [*, *, width] shape.
        var reloaded = Model.FromBytes(model.ToBytes());
        foreach (var h in pass.Located)
        {
            var v = reloaded.Graph.Outputs.Single(o => o.Name == h.Tensor.Name);
            Assert.Equal(ElementType.Float, v.ElementType);
            Assert.Equal(3, v.Shape?.Rank);
            Assert.Equal(e.HiddenStatesShape[2], v.Shape![2].Value);
        }

        CheckAgainstTorch(name, e, model, pass.Located.Select(h => h.Tensor.Name).ToArray());
    }

    private void CheckAgainstTorch(string name, FixtureExpectation e, Model exposed, string[] stateNames)
    {
        using var original = SessionFactory.Create(e.ModelPath);
        using var session = SessionFactory.Create(exposed);
        var before = OrtRun.Ids(original, e.InputIds, e.InputShape[0], e.InputShape[1]);
        var after = OrtRun.Ids(session, e.InputIds, e.InputShape[0], e.InputShape[1]);

        double hiddenDiff = 0;
        for (int l = 0; l < stateNames.Length; l++)
        {
            var h = after[stateNames[l]];
            Assert.Equal(e.HiddenStatesShape, h.Shape);
            hiddenDiff = Math.Max(hiddenDiff, OrtRun.MaxAbsDiff(h.Data, e.HiddenStates[l]));
        }
        double logitsVsOriginal = OrtRun.MaxAbsDiff(after["logits"].Data, before["logits"].Data);
        double logitsVsTorch = OrtRun.MaxAbsDiff(after["logits"].Data, e.Logits);
        output.WriteLine($"{name}: max |hidden - torch| = {hiddenDiff:E3}, max |logits - unexposed| = {logitsVsOriginal:E3}, max |logits - torch| = {logitsVsTorch:E3}");
        Assert.True(hiddenDiff <= 1e-4, $"{name}: exposed hidden states differ from PyTorch by {hiddenDiff}");
        Assert.True(logitsVsTorch <= 1e-4, $"{name}: logits differ from PyTorch by {logitsVsTorch}");
        Assert.True(OrtRun.BitEqual(after["logits"].Data, before["logits"].Data),
            $"{name}: exposing hidden states changed the logits (max diff {logitsVsOriginal})");
    }
}
