using System.Text.Json;
using SafeTune.Onnx;
using SafeTune.Safety.Metrics;
using SafeTune.Safety.Probes;
using SafeTune.TestSupport;

namespace SafeTune.Safety.Tests;

public sealed class MlpHeadTests
{
    private static float[] Floats(JsonElement e) => [.. e.EnumerateArray().Select(v => (float)v.GetDouble())];

    private static float[] Parameters(JsonElement w) =>
        [.. Floats(w.GetProperty("w1")), .. Floats(w.GetProperty("b1")), .. Floats(w.GetProperty("w2")), .. Floats(w.GetProperty("b2"))];

    [Fact]
    public void AdamW_trajectory_matches_PyTorch()
    {
        var root = JsonDocument.Parse(File.ReadAllText(Repo.Fixture("probes", "mlp_adamw.json"))).RootElement;
        int d = root.GetProperty("d").GetInt32(), h = root.GetProperty("hidden").GetInt32();
        var z = Floats(root.GetProperty("z"));
        var y = root.GetProperty("y").EnumerateArray().Select(v => v.GetInt32()).ToArray();
        var options = new MlpTrainOptions
        {
            HiddenSize = h,
            LearningRate = root.GetProperty("lr").GetDouble(),
            WeightDecay = root.GetProperty("weightDecay").GetDouble(),
            Beta1 = root.GetProperty("betas")[0].GetDouble(),
            Beta2 = root.GetProperty("betas")[1].GetDouble(),
            Epsilon = root.GetProperty("eps").GetDouble(),
        };
        var trainer = new MlpTrainer(d, h, options, Parameters(root.GetProperty("initial")));
        var expectedLosses = root.GetProperty("losses").EnumerateArray().Select(v => v.GetDouble()).ToArray();
        int step = 0;
        foreach (var batch in root.GetProperty("batches").EnumerateArray())
        {
            var idx = batch.EnumerateArray().Select(v => v.GetInt32()).ToArray();
            var zb = idx.SelectMany(i => z.AsSpan(i * d, d).ToArray()).ToArray();
            var yb = idx.Select(i => y[i]).ToArray();
            double loss = trainer.Step(zb, yb);
            Assert.True(Math.Abs(loss - expectedLosses[step]) <= 1e-6 * Math.Max(1, Math.Abs(expectedLosses[step])),
                $"step {step}: loss {loss:R} vs PyTorch {expectedLosses[step]:R}");
            step++;
        }
        Assert.Equal(expectedLosses.Length, step);
        var expected = Parameters(root.GetProperty("final"));
        var actual = trainer.Parameters.ToArray();
        Assert.Equal(expected.Length, actual.Length);
        double worst = 0;
        int at = -1;
        for (int i = 0; i < expected.Length; i++)
            if (Math.Abs(expected[i] - actual[i]) > worst) { worst = Math.Abs(expected[i] - actual[i]); at = i; }
        Assert.True(worst <= 1e-5, $"largest weight difference {worst:G3} at parameter {at} (tolerance 1e-5)");
    }

    /// <summary>Two Gaussian blobs per class in an XOR layout: no linear head separates them.</summary>
    private static (float[][] X, bool[] Y) Xor(int n, int seed)
    {
        var rng = new Random(seed);
        var x = new float[n][];
        var y = new bool[n];
        for (int i = 0; i < n; i++)
        {
            int a = rng.Next(2), b = rng.Next(2);
            x[i] = [(float)(a * 2 - 1 + 0.3 * Gaussian(rng)), (float)(b * 2 - 1 + 0.3 * Gaussian(rng)), (float)Gaussian(rng), (float)(5 + Gaussian(rng))];
            y[i] = a != b;
        }
        return (x, y);
    }

    private static double Gaussian(Random rng) =>
        Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());

    [Fact]
    public void Learns_what_a_linear_head_cannot_and_stops_early()
    {
        var (x, y) = Xor(400, 1);
        var (tx, ty) = Xor(400, 2);
        var result = MlpHead.Train(x, y, new MlpTrainOptions { HiddenSize = 32, LearningRate = 1e-2, MaxEpochs = 200, Patience = 10 });
        var mlpAuroc = BinaryMetrics.Auroc(result.Head.PredictProbability(tx), ty);
        var linear = LogisticRegression.Fit(x, y, 1e-3);
        var linearAuroc = BinaryMetrics.Auroc(linear.PredictProbability(tx), ty);
        Assert.True(mlpAuroc > 0.97, $"MLP AUROC {mlpAuroc:F3}");
        Assert.True(linearAuroc < 0.7, $"logistic AUROC {linearAuroc:F3}");
        Assert.True(result.EpochsRun < 200 && result.BestEpoch <= result.EpochsRun && result.EpochsRun - result.BestEpoch == 10,
            $"best epoch {result.BestEpoch}, epochs run {result.EpochsRun}");
        Assert.Equal(result.EpochsRun, result.ValidationLoss.Count);
        Assert.True(result.ValidationLoss.Skip(result.BestEpoch).All(l => l > result.ValidationLoss[result.BestEpoch - 1] - 1e-4));
    }

    [Fact]
    public void Training_is_bit_identical_for_the_same_inputs()
    {
        var (x, y) = Xor(300, 3);
        var options = new MlpTrainOptions { HiddenSize = 64, MaxEpochs = 5, BatchSize = 32, Seed = 7 };
        var a = MlpHead.Train(x, y, options).Head;
        var b = MlpHead.Train(x, y, options).Head;
        Assert.True(a.W1.SequenceEqual(b.W1) && a.B1.SequenceEqual(b.B1) && a.W2.SequenceEqual(b.W2) && a.B2.SequenceEqual(b.B2));
        var c = MlpHead.Train(x, y, options with { Seed = 8 }).Head;
        Assert.False(a.W1.SequenceEqual(c.W1));
    }

    [Fact]
    public void Fixed_budget_without_validation_runs_every_epoch()
    {
        var (x, y) = Xor(100, 4);
        var r = MlpHead.Train(x, y, new MlpTrainOptions { HiddenSize = 8, MaxEpochs = 7, ValidationFraction = 0 });
        Assert.Equal(7, r.EpochsRun);
        Assert.Equal(7, r.BestEpoch);
        Assert.Empty(r.ValidationLoss);
        Assert.Equal(7, r.TrainLoss.Count);
    }

    [Fact]
    public void Bad_options_and_inputs_are_refused()
    {
        var (x, y) = Xor(20, 5);
        Assert.Throws<UserInputException>(() => MlpHead.Train(x, y, new MlpTrainOptions { HiddenSize = 0 }));
        Assert.Throws<UserInputException>(() => MlpHead.Train(x, y, new MlpTrainOptions { LearningRate = 0 }));
        Assert.Throws<UserInputException>(() => MlpHead.Train(x, [.. y.Select(_ => true)]));
        x[3][1] = float.NaN;
        Assert.Throws<UserInputException>(() => MlpHead.Train(x, y));
    }
}
