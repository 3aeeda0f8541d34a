using Microsoft.ML.OnnxRuntime;
using SafeTune.Autodiff.Losses;
using SafeTune.Onnx;
using SafeTune.Runtime;
using Xunit.Abstractions;

namespace SafeTune.Autodiff.Tests;

/// <summary>The loss subgraphs against hand computations in double, and their gradients against finite differences.</summary>
public sealed class LossTests(ITestOutputHelper output)
{
    private const int B = 2, T = 3, V = 5;
    private const int Seed = 6100;
    private static readonly long[] Labels = [1, LossNames.IgnoreIndex, 4, LossNames.IgnoreIndex, 0, 2];

    private static float[] RandomLogits(int seed)
    {
        var rng = new Random(seed);
        return [.. Enumerable.Range(0, B * T * V).Select(_ => (float)(rng.NextDouble() * 4 - 2))];
    }

    /// <summary>A model whose output <c>logits</c> [2,3,5] is Identity of the float parameter W.</summary>
    private static Model LogitsModel(float[] w)
    {
        var b = GraphBuilder.ForNewModel(17);
        var p = b.Parameter(TensorData.Create<float>("W", [B, T, V], w));
        b.Output(b.Identity(p), "logits");
        return b.Model!;
    }

    private static TensorData LabelsData(long[] labels) => TensorData.Create<long>(LossNames.Labels, [B, T], labels);
    private static TensorData RefData(float[] r) => TensorData.Create<float>(LossNames.ReferenceLogits, [B, T, V], r);

    private static double[] LogSoftmax(float[] z, int row)
    {
        double max = Enumerable.Range(0, V).Max(v => (double)z[row * V + v]);
        double lse = max + Math.Log(Enumerable.Range(0, V).Sum(v => Math.Exp(z[row * V + v] - max)));
        return [.. Enumerable.Range(0, V).Select(v => z[row * V + v] - lse)];
    }

    private static int Count(long[] labels) => labels.Count(l => l != LossNames.IgnoreIndex);

    private static double HandCrossEntropy(float[] z, long[] labels)
    {
        double sum = 0;
        for (int n = 0; n < B * T; n++)
            if (labels[n] != LossNames.IgnoreIndex) sum -= LogSoftmax(z, n)[labels[n]];
        return sum / Math.Max(1, Count(labels));
    }

    private static double[] HandCrossEntropyGrad(float[] z, long[] labels)
    {
        var g = new double[z.Length];
        int count = Math.Max(1, Count(labels));
        for (int n = 0; n < B * T; n++)
        {
            if (labels[n] == LossNames.IgnoreIndex) continue;
            var lp = LogSoftmax(z, n);
            for (int v = 0; v < V; v++) g[n * V + v] = (Math.Exp(lp[v]) - (v == labels[n] ? 1 : 0)) / count;
        }
        return g;
    }

    private static double HandKl(float[] z, float[] r, long[] labels)
    {
        double sum = 0;
        for (int n = 0; n < B * T; n++)
        {
            if (labels[n] == LossNames.IgnoreIndex) continue;
            var lp = LogSoftmax(z, n);
            var lr = LogSoftmax(r, n);
            for (int v = 0; v < V; v++) sum += Math.Exp(lr[v]) * (lr[v] - lp[v]);
        }
        return sum / Math.Max(1, Count(labels));
    }

    private static double[] HandKlGrad(float[] z, float[] r, long[] labels)
    {
        var g = new double[z.Length];
        int count = Math.Max(1, Count(labels));
        for (int n = 0; n < B * T; n++)
        {
            if (labels[n] == LossNames.IgnoreIndex) continue;
            var lp = LogSoftmax(z, n);
            var lr = LogSoftmax(r, n);
            for (int v = 0; v < V; v++) g[n * V + v] = (Math.Exp(lp[v]) - Math.Exp(lr[v])) / count;
        }
        return g;
    }

    /// <summary>Runs a forward model (W as its initializer) and returns the named scalar output.</summary>
    private static double RunScalar(Model model, string outputName, IReadOnlyDictionary<string, TensorData> feeds)
    {
        using var session = SessionFactory.Create(model);
        using var bag = new OrtValueBag();
        var names = session.InputMetadata.Keys.ToList();
        var values = names.Select(n => bag.Add(n, OrtValues.FromTensorData(feeds[n]))).ToList();
        using var results = session.Run(new RunOptions(), names, values, [outputName]);
        return GradientCheck.ReadDoubles(results[0])[0];
    }

    [Fact]
    public void CrossEntropyMatchesHandComputationAndFiniteDifferences()
    {
        var w = RandomLogits(Seed);
        var model = LogitsModel(w);
        var loss = LossGraphs.AppendCrossEntropy(model);
        Assert.Equal(LossNames.Sft, loss.Name);
        var feeds = new Dictionary<string, TensorData> { [LossNames.Labels] = LabelsData(Labels) };

        double expected = HandCrossEntropy(w, Labels);
        double actual = RunScalar(model, loss.Name, feeds);
        output.WriteLine($"cross-entropy {actual:r} vs hand {expected:r}");
        Assert.True(Math.Abs(actual - expected) <= 1e-6 * Math.Abs(expected), $"cross-entropy {actual:r} vs hand {expected:r}");

        var report = GradientCheck.CheckModel("CrossEntropy", "[2,3,5] logits with -100 labels", Seed, model, loss.Name, ["W"], feeds, null, 1e-2, 1e-2);
        output.WriteLine(report.Summary());
        GradientCheck.AssertClose(HandCrossEntropyGrad(w, Labels), report.Gradients["W"], 1e-5, "cross-entropy gradient vs hand");
        // Ignored positions get no gradient at all.
        for (int n = 0; n < B * T; n++)
            if (Labels[n] == LossNames.IgnoreIndex)
                for (int v = 0; v < V; v++) Assert.Equal(0.0, report.Gradients["W"][n * V + v]);
    }

    [Fact]
    public void KlMatchesHandComputationAndFiniteDifferences()
    {
        var w = RandomLogits(Seed + 1);
        var r = RandomLogits(Seed + 2);
        var model = LogitsModel(w);
        var loss = LossGraphs.AppendKl(model);
        Assert.Equal(LossNames.Kl, loss.Name);
        var feeds = new Dictionary<string, TensorData> { [LossNames.Labels] = LabelsData(Labels), [LossNames.ReferenceLogits] = RefData(r) };

        double expected = HandKl(w, r, Labels);
        double actual = RunScalar(model, loss.Name, feeds);
        output.WriteLine($"KL {actual:r} vs hand {expected:r}");
        Assert.True(expected > 0.05);
        Assert.True(Math.Abs(actual - expected) <= 1e-6 * Math.Abs(expected) + 1e-7, $"KL {actual:r} vs hand {expected:r}");

        var report = GradientCheck.CheckModel("Kl", "[2,3,5] logits, ref_logits input", Seed + 1, model, loss.Name, ["W"], feeds, null, 1e-2, 1e-2);
        output.WriteLine(report.Summary());
        GradientCheck.AssertClose(HandKlGrad(w, r, Labels), report.Gradients["W"], 1e-5, "KL gradient vs hand");
    }

    [Fact]
    public void KlOfIdenticalLogitsIsZero()
    {
        var w = RandomLogits(Seed + 3);
        var model = LogitsModel(w);
        var loss = LossGraphs.AppendKl(model);
        var feeds = new Dictionary<string, TensorData> { [LossNames.Labels] = LabelsData(Labels), [LossNames.ReferenceLogits] = RefData(w) };
        Assert.True(Math.Abs(RunScalar(model, loss.Name, feeds)) <= 1e-6);
        var report = GradientCheck.CheckModel("Kl", "identical logits", Seed + 3, model, loss.Name, ["W"], feeds, null, 1e-2, 1e-2);
        Assert.True(Math.Abs(report.Loss) <= 1e-6, $"KL of identical logits is {report.Loss:r}");
        Assert.All(report.Gradients["W"], g => Assert.True(Math.Abs(g) <= 1e-6, $"gradient {g:r}"));
    }

    [Fact]
    public void WeightedSumBlendsLossesAndGradientsWithWeightsFedPerRun()
    {
        var w = RandomLogits(Seed + 4);
        var r = RandomLogits(Seed + 5);
        var model = LogitsModel(w);
        LossGraphs.AppendCrossEntropy(model);
        LossGraphs.AppendKl(model);
        var total = LossGraphs.AppendWeightedSum(model, [(LossNames.Sft, "w_sft"), (LossNames.Kl, "w_kl")]);
        Assert.Equal(LossNames.Total, total.Name);
        var backward = BackwardBuilder.Build(model, total.Name, ["W"]);

        using var session = SessionFactory.Create(backward.Model);
        using var bag = new OrtValueBag();
        var wSft = new float[1];
        var wKl = new float[1];
        var feeds = new Dictionary<string, OrtValue>
        {
            ["W"] = bag.Add("W", OrtValues.FromTensorData(backward.InitialValues["W"])),
            [LossNames.Labels] = bag.Add(LossNames.Labels, OrtValues.FromTensorData(LabelsData(Labels))),
            [LossNames.ReferenceLogits] = bag.Add(LossNames.ReferenceLogits, OrtValues.FromTensorData(RefData(r))),
            ["w_sft"] = bag.Add("w_sft", OrtValues.Wrap(wSft)),
            ["w_kl"] = bag.Add("w_kl", OrtValues.Wrap(wKl)),
        };
        Assert.Equal(feeds.Keys.Order(), session.InputMetadata.Keys.Order());
        string[] outputs = [LossNames.Total, LossNames.Sft, LossNames.Kl, "W_grad"];
        (double Total, double Sft, double Kl, double[] Grad) Step(float a, float b)
        {
            wSft[0] = a; // the OrtValues wrap these arrays: the same session sees new weights every run
            wKl[0] = b;
            using var res = session.Run(new RunOptions(), feeds.Keys.ToArray(), feeds.Values.ToArray(), outputs);
            return (GradientCheck.ReadDoubles(res[0])[0], GradientCheck.ReadDoubles(res[1])[0], GradientCheck.ReadDoubles(res[2])[0], GradientCheck.ReadDoubles(res[3]));
        }

        var sft = Step(1, 0);
        var kl = Step(0, 1);
        Assert.True(Math.Abs(sft.Total - HandCrossEntropy(w, Labels)) <= 1e-6 * sft.Total);
        Assert.True(Math.Abs(kl.Total - HandKl(w, r, Labels)) <= 1e-6 * kl.Total);
        GradientCheck.AssertClose(HandCrossEntropyGrad(w, Labels), sft.Grad, 1e-5, "w = (1, 0)");
        GradientCheck.AssertClose(HandKlGrad(w, r, Labels), kl.Grad, 1e-5, "w = (0, 1)");

        foreach (var (a, b) in new[] { (0.3f, 1.7f), (2.5f, -0.5f), (0f, 0f), (1f, 1f) })
        {
            var mixed = Step(a, b);
            double expected = a * sft.Total + b * kl.Total;
            output.WriteLine($"w = ({a}, {b}): loss {mixed.Total:r}, expected {expected:r}");
            Assert.True(Math.Abs(mixed.Total - expected) <= 1e-6 * (Math.Abs(a * sft.Total) + Math.Abs(b * kl.Total)) + 1e-7,
                $"w = ({a}, {b}): loss {mixed.Total:r}, expected {expected:r}");
            Assert.True(Math.Abs(mixed.Sft - sft.Total) <= 1e-7 && Math.Abs(mixed.Kl - kl.Total) <= 1e-7, "the component losses do not depend on the weights");
            var blend = sft.Grad.Zip(kl.Grad, (g1, g2) => a * g1 + b * g2).ToArray();
            double scale = Math.Max(1e-6, sft.Grad.Max(Math.Abs) * Math.Abs(a) + kl.Grad.Max(Math.Abs) * Math.Abs(b));
            for (int i = 0; i < blend.Length; i++)
                Assert.True(Math.Abs(mixed.Grad[i] - blend[i]) <= 1e-5 * scale, $"w = ({a}, {b}) element {i}: {mixed.Grad[i]:r} vs {blend[i]:r}");
        }

        // Finite differences of the weighted total at one setting of the weights.
        var fdFeeds = new Dictionary<string, TensorData>
        {
            [LossNames.Labels] = LabelsData(Labels),
            [LossNames.ReferenceLogits] = RefData(r),
            ["w_sft"] = TensorData.Scalar("w_sft", 0.3f),
            ["w_kl"] = TensorData.Scalar("w_kl", 1.7f),
        };
        var report = GradientCheck.CheckModel("WeightedSum", "0.3 * sft + 1.7 * kl", Seed + 4, model, total.Name, ["W"], fdFeeds, null, 1e-2, 1e-2);
        output.WriteLine(report.Summary());
    }
}
