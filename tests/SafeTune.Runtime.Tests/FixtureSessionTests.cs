using SafeTune.Onnx;
using SafeTune.Runtime;
using SafeTune.Tests.Common;
using Xunit.Abstractions;

namespace SafeTune.Runtime.Tests;

public sealed class FixtureSessionTests(ITestOutputHelper output)
{
    public static TheoryData<string> Fixtures => new(FixtureExpectation.AllNames);

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void FixtureGivesPyTorchLogits(string name)
    {
        var e = FixtureExpectation.Load(name);
        using var session = SessionFactory.Create(Model.Load(e.ModelPath));
        var outputs = OrtRun.Ids(session, e.InputIds, e.InputShape[0], e.InputShape[1]);

        var logits = outputs["logits"];
        Assert.Equal(e.LogitsShape, logits.Shape);
        double diff = OrtRun.MaxAbsDiff(logits.Data, e.Logits);
        output.WriteLine($"{name}: max |logits - torch| = {diff:E3}");
        Assert.True(diff <= 1e-4, $"{name}: logits differ from PyTorch by {diff}");
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void FixtureRunsAtAnotherBatchAndSequenceLength(string name)
    {
        var e = FixtureExpectation.Load(name);
        using var session = SessionFactory.Create(e.ModelPath);
        const int batch = 3, sequence = 11;
        int t0 = (int)e.InputShape[1];
        long vocab = e.LogitsShape[2];

        // Rows 0 and 1 extend the fixture's prompts with four more tokens, row 2 is fresh: with causal attention the
        // first seven positions of rows 0 and 1 must still give PyTorch's logits.
        var extra = OrtRun.RandomIds(11, batch * sequence, (int)vocab);
        var ids = (long[])extra.Clone();
        for (int r = 0; r < 2; r++)
            for (int t = 0; t < t0; t++) ids[r * sequence + t] = e.InputIds[r * t0 + t];

        var logits = OrtRun.Ids(session, ids, batch, sequence)["logits"];
        Assert.Equal([batch, sequence, 96], logits.Shape);
        Assert.All(logits.Data, v => Assert.True(float.IsFinite(v)));

        double diff = 0;
        for (int r = 0; r < 2; r++)
        {
            var got = logits.Data.AsSpan(r * sequence * (int)vocab, t0 * (int)vocab);
            var want = e.Logits.AsSpan(r * t0 * (int)vocab, t0 * (int)vocab);
            diff = Math.Max(diff, OrtRun.MaxAbsDiff(got, want));
        }
        output.WriteLine($"{name}: [3, 11] prefix max |logits - torch| = {diff:E3}");
        Assert.True(diff <= 1e-4, $"{name}: prefix logits at [3, 11] differ from PyTorch by {diff}");
    }
}
