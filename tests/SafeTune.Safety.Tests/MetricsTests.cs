using SafeTune.Onnx;
using SafeTune.Safety.Metrics;

namespace SafeTune.Safety.Tests;

public class MetricsTests
{
    // Positives 0.9 0.8 0.4 0.3; negatives 0.7 0.4 0.2 0.1 (one tie at 0.4).
    private static readonly double[] Scores = [0.9, 0.8, 0.4, 0.3, 0.7, 0.4, 0.2, 0.1];
    private static readonly bool[] Labels = [true, true, true, true, false, false, false, false];

    [Fact]
    public void PerfectSeparationGivesOne() =>
        Assert.Equal(1.0, BinaryMetrics.Auroc([0.9, 0.8, 0.1, 0.2], [true, true, false, false]));

    [Fact]
    public void ReversedGivesZero() =>
        Assert.Equal(0.0, BinaryMetrics.Auroc([0.1, 0.2, 0.9, 0.8], [true, true, false, false]));

    [Fact]
    public void AllTiesGiveOneHalf() =>
        Assert.Equal(0.5, BinaryMetrics.Auroc([3, 3, 3, 3, 3], [true, false, true, false, false]));

    [Fact]
    public void HandComputedFourByFour()
    {
        // Pairs won: 4 + 4 + (2 + 0.5 tie) + 2 = 12.5 of 16.
        Assert.Equal(12.5 / 16, BinaryMetrics.Auroc(Scores, Labels), 12);
    }

    [Fact]
    public void AurocEqualsPairCountOnRandomData()
    {
        var rng = new Random(3);
        var s = Enumerable.Range(0, 200).Select(_ => Math.Round(rng.NextDouble() * 20) / 20).ToArray();
        var y = Enumerable.Range(0, 200).Select(_ => rng.NextDouble() < 0.4).ToArray();
        double wins = 0; int pairs = 0;
        for (int i = 0; i < s.Length; i++)
            for (int j = 0; j < s.Length; j++)
                if (y[i] && !y[j]) { pairs++; wins += s[i] > s[j] ? 1 : s[i] == s[j] ? 0.5 : 0; }
        Assert.Equal(wins / pairs, BinaryMetrics.Auroc(s, y), 12);
    }

    [Fact]
    public void MonotoneTransformsLeaveRankMetricsUnchanged()
    {
        var rng = new Random(5);
        var s = Enumerable.Range(0, 300).Select(_ => rng.NextDouble() * 4 - 2).ToArray();
        var y = s.Select(v => rng.NextDouble() < 1 / (1 + Math.Exp(-2 * v))).ToArray();
        var t = s.Select(v => Math.Exp(3 * v) + 7).ToArray();
        var sig = s.Select(v => 1 / (1 + Math.Exp(-v))).ToArray();
        Assert.Equal(BinaryMetrics.Auroc(s, y), BinaryMetrics.Auroc(t, y), 12);
        Assert.Equal(BinaryMetrics.Auroc(s, y), BinaryMetrics.Auroc(sig, y), 12);
        Assert.Equal(BinaryMetrics.TprAtFpr(s, y, 0.05), BinaryMetrics.TprAtFpr(t, y, 0.05), 12);
        Assert.Equal(BinaryMetrics.TprAtFpr(s, y, 0.01), BinaryMetrics.TprAtFpr(sig, y, 0.01), 12);
        var rocS = BinaryMetrics.RocCurve(s, y).Select(p => (p.Fpr, p.Tpr));
        var rocT = BinaryMetrics.RocCurve(t, y).Select(p => (p.Fpr, p.Tpr));
        Assert.Equal(rocS, rocT);
    }

    [Fact]
    public void RocCurveHandComputed()
    {
        var roc = BinaryMetrics.RocCurve(Scores, Labels);
        var expected = new (double, double)[] { (0, 0), (0, 0.25), (0, 0.5), (0.25, 0.5), (0.5, 0.75), (0.5, 1), (0.75, 1), (1, 1) };
        Assert.Equal(expected, roc.Select(p => (p.Fpr, p.Tpr)));
        Assert.Equal(double.PositiveInfinity, roc[0].Threshold);
        Assert.Equal(0.4, roc[4].Threshold);
    }

    [Fact]
    public void TprAtFprHandComputed()
    {
        Assert.Equal(0.5, BinaryMetrics.TprAtFpr(Scores, Labels, 0.01));
        Assert.Equal(0.5, BinaryMetrics.TprAtFpr(Scores, Labels, 0.05));
        Assert.Equal(0.5, BinaryMetrics.TprAtFpr(Scores, Labels, 0.25));
        Assert.Equal(1.0, BinaryMetrics.TprAtFpr(Scores, Labels, 0.5));
        Assert.Equal(0.0, BinaryMetrics.TprAtFpr([0.9, 0.1], [false, true], 0.01));
    }

    [Fact]
    public void AccuracyHandComputed()
    {
        // At 0.5: positives 0.9 0.8 right, 0.4 0.3 wrong; negative 0.7 wrong, 0.4 0.2 0.1 right.
        Assert.Equal(0.625, BinaryMetrics.Accuracy(Scores, Labels, 0.5));
        // At 0.4 (inclusive): positives 3 right; negatives 0.2 0.1 right.
        Assert.Equal(5 / 8.0, BinaryMetrics.Accuracy(Scores, Labels, 0.4));
    }

    [Fact]
    public void ExpectedCalibrationErrorHandComputed()
    {
        Assert.Equal(0.1, BinaryMetrics.ExpectedCalibrationError([0.05, 0.15, 0.95, 0.85], [false, false, true, true]), 12);
        var p = Enumerable.Repeat(0.7, 10).ToArray();
        var y = Enumerable.Range(0, 10).Select(i => i < 7).ToArray();
        Assert.Equal(0.0, BinaryMetrics.ExpectedCalibrationError(p, y), 12);
        // A probability of exactly 1 falls in the last bin with 0.95: |1.95/2 - 1/2| * 2/2.
        Assert.Equal(0.475, BinaryMetrics.ExpectedCalibrationError([1.0, 0.95], [true, false]), 12);
        Assert.Throws<UserInputException>(() => BinaryMetrics.ExpectedCalibrationError([1.2], [true]));
    }

    [Fact]
    public void ThresholdForRecallHandComputed()
    {
        Assert.Equal(0.4, BinaryMetrics.ThresholdForRecall(Scores, Labels, 0.75));
        Assert.Equal(0.4, BinaryMetrics.ThresholdForRecall(Scores, Labels, 0.6));
        Assert.Equal(0.8, BinaryMetrics.ThresholdForRecall(Scores, Labels, 0.5));
        Assert.Equal(0.3, BinaryMetrics.ThresholdForRecall(Scores, Labels, 1.0));
        double t = BinaryMetrics.ThresholdForRecall(Scores, Labels, 0.75);
        Assert.True(BinaryMetrics.Recall(Scores, Labels, t) >= 0.75);
        Assert.Equal(0.5, BinaryMetrics.FalsePositiveRate(Scores, Labels, t));
    }

    [Fact]
    public void RejectsBadInput()
    {
        Assert.Throws<UserInputException>(() => BinaryMetrics.Auroc([1, 2], [true, true]));
        Assert.Throws<UserInputException>(() => BinaryMetrics.Auroc([1, double.NaN], [true, false]));
        Assert.Throws<UserInputException>(() => BinaryMetrics.Auroc([1, 2, 3], [true, false]));
        Assert.Throws<UserInputException>(() => BinaryMetrics.ThresholdForRecall([1, 2], [false, false], 0.5));
    }
}
