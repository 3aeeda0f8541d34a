using SafeTune.Onnx;
using SafeTune.Safety.Activations;
using SafeTune.Safety.Metrics;
using SafeTune.Safety.Probes;

namespace SafeTune.Safety.Tests;

public sealed class AttentionQueryFitTests
{
    /// <summary>
    /// Prompts of 6 to 12 tokens with <paramref name="f"/> noise features each; one token per prompt is the cue (feature 0
    /// is high on it) and its feature 1 carries the label (+2 harmful, -2 harmless). Mean pooling dilutes the cue by the
    /// prompt's length; attention on feature 0 finds it.
    /// </summary>
    private static (List<float[]> Tokens, List<bool> Y) Cue(int n, int f, int seed)
    {
        var rng = new Random(seed);
        double Normal() => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
        var tokens = new List<float[]>();
        var y = new List<bool>();
        for (int i = 0; i < n; i++)
        {
            bool harmful = i % 2 == 0;
            int len = rng.Next(6, 13), cue = rng.Next(len);
            var x = new float[len * f];
            for (int k = 0; k < x.Length; k++) x[k] = (float)Normal();
            x[cue * f] = 4;
            x[cue * f + 1] = harmful ? 2 : -2;
            tokens.Add(x);
            y.Add(harmful);
        }
        return (tokens, y);
    }

    [Fact]
    public void Gradients_match_finite_differences()
    {
        const int f = 5;
        var (tokens, y) = Cue(12, f, 1);
        var rng = new Random(2);
        var mean = Enumerable.Range(0, f).Select(_ => rng.NextDouble() - 0.5).ToArray();
        var std = Enumerable.Range(0, f).Select(_ => 0.5 + rng.NextDouble()).ToArray();
        var probe = new AttentionQueryFit.AttentionProbe(f, (mean, std));
        for (int k = 0; k < probe.Parameters.Length; k++) probe.Parameters[k] = rng.NextDouble() - 0.5;
        var labels = y.Select(v => v ? 1.0 : 0.0).ToArray();
        int[] batch = [.. Enumerable.Range(0, tokens.Count)];
        const double l2 = 0.03;
        double Objective()
        {
            double penalty = 0;
            for (int k = 0; k < 2 * f; k++) penalty += probe.Parameters[k] * probe.Parameters[k];
            return probe.Loss(tokens, labels, batch) + l2 / 2 * penalty;
        }
        probe.Gradient(tokens, labels, batch, l2);
        var analytic = probe.Gradients.ToArray();
        for (int k = 0; k < probe.Parameters.Length; k++)
        {
            const double h = 1e-5;
            double keep = probe.Parameters[k];
            probe.Parameters[k] = keep + h;
            double up = Objective();
            probe.Parameters[k] = keep - h;
            double down = Objective();
            probe.Parameters[k] = keep;
            double numeric = (up - down) / (2 * h);
            Assert.True(Math.Abs(numeric - analytic[k]) <= 1e-6 + 1e-5 * Math.Abs(numeric), $"parameter {k}: analytic {analytic[k]:G6}, finite difference {numeric:G6}");
        }
    }

    [Fact]
    public void The_query_finds_the_cue_token_that_mean_pooling_dilutes()
    {
        const int f = 8;
        var (tokens, y) = Cue(600, f, 3);
        var (test, yTest) = Cue(400, f, 4);
        var fit = AttentionQueryFit.Fit(tokens, f, y, new AttentionFitOptions { LearningRate = 3e-2, MaxEpochs = 40 });
        Assert.True(fit.BestEpoch > 0);
        // The query reads the cue's feature: its weight on feature 0 dominates the others.
        Assert.True(fit.Query[0] > 3 * fit.Query.Skip(2).Max(Math.Abs), $"query [{string.Join(", ", fit.Query.Select(q => q.ToString("F2")))}]");

        double Auroc(float[] query)
        {
            var head = LogisticRegression.Fit([.. tokens.Select(t => AttentionPool.Pool(t, query))], y, 1e-3);
            double[] scores = [.. test.Select(t => head.PredictProbability(AttentionPool.Pool(t, query)))];
            return BinaryMetrics.Auroc(scores, [.. yTest]);
        }
        double attention = Auroc(fit.Query), mean = Auroc(new float[f]);
        Assert.True(attention > 0.97 && attention > mean + 0.05, $"held-out AUROC: attention {attention:F3}, mean pooling {mean:F3}");
    }

    [Fact]
    public void Fitting_is_deterministic_for_a_seed()
    {
        var (tokens, y) = Cue(100, 4, 5);
        var a = AttentionQueryFit.Fit(tokens, 4, y, new AttentionFitOptions { Seed = 3 });
        var b = AttentionQueryFit.Fit(tokens, 4, y, new AttentionFitOptions { Seed = 3 });
        Assert.Equal(a.Query, b.Query);
        Assert.Equal(a.ValidationLoss, b.ValidationLoss);
        Assert.NotEqual(a.Query, AttentionQueryFit.Fit(tokens, 4, y, new AttentionFitOptions { Seed = 4 }).Query);
    }

    [Fact]
    public void Bad_input_is_refused_with_the_reason()
    {
        var (tokens, y) = Cue(10, 4, 6);
        Assert.Contains("multiple of 4", Assert.Throws<UserInputException>(() => AttentionQueryFit.Fit([.. tokens, new float[3]], 4, [.. y, true])).Message);
        Assert.Contains("both classes", Assert.Throws<UserInputException>(() => AttentionQueryFit.Fit(tokens, 4, [.. y.Select(_ => true)])).Message);
        Assert.Contains("differ in number", Assert.Throws<UserInputException>(() => AttentionQueryFit.Fit(tokens, 4, [.. y.Skip(1)])).Message);
        var nan = tokens.Select(t => (float[])t.Clone()).ToList();
        nan[2][1] = float.NaN;
        Assert.Contains("prompt 2", Assert.Throws<UserInputException>(() => AttentionQueryFit.Fit(nan, 4, y)).Message);
        Assert.Throws<UserInputException>(() => AttentionQueryFit.Fit(tokens, 4, y, new AttentionFitOptions { LearningRate = 0 }));
    }

    [Fact]
    public void Pooling_weights_are_a_softmax_and_a_zero_query_is_the_mean()
    {
        float[] tokens = [1, 0, 0, 1, 2, 2];
        var w = AttentionPool.Weights(tokens, 3, [1f, 0f]);
        double z = Math.E + 1 + Math.E * Math.E;
        Assert.Equal([Math.E / z, 1 / z, Math.E * Math.E / z], w, (a, b) => Math.Abs(a - b) < 1e-12);
        Assert.Equal([1f, 1f], AttentionPool.Pool(tokens, [0f, 0f]));
        Assert.Throws<ArgumentException>(() => AttentionPool.Pool(tokens, [0f, 0f, 0f, 0f]));
        Assert.Throws<ArgumentException>(() => AttentionPool.Weights(tokens, 0, [1f, 0f]));
    }
}
