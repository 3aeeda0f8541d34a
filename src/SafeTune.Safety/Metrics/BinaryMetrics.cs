using SafeTune.Onnx;

namespace SafeTune.Safety.Metrics;

/// <summary>One point of a ROC curve: the rates reached by flagging every example whose score is at least <see cref="Threshold"/>.</summary>
/// <param name="Fpr">False-positive rate: the share of negatives flagged.</param>
/// <param name="Tpr">True-positive rate (recall): the share of positives flagged.</param>
/// <param name="Threshold">The score threshold; <see cref="double.PositiveInfinity"/> for the point (0, 0) where nothing is flagged.</param>
public readonly record struct RocPoint(double Fpr, double Tpr, double Threshold);

/// <summary>
/// Metrics for a binary detector whose scores are higher for the positive (harmful) class.
/// An example is predicted positive when its score is greater than or equal to the threshold.
/// </summary>
public static class BinaryMetrics
{
    /// <summary>
    /// Area under the ROC curve, computed exactly as the Mann-Whitney statistic with average ranks for ties:
    /// the probability that a random positive scores above a random negative, counting ties as one half.
    /// </summary>
    /// <param name="scores">Scores, higher meaning more likely positive.</param>
    /// <param name="labels">True for positives.</param>
    /// <exception cref="UserInputException">Lengths differ, a score is NaN, or a class is absent.</exception>
    public static double Auroc(ReadOnlySpan<double> scores, ReadOnlySpan<bool> labels)
    {
        var (pos, neg) = Validate(scores, labels);
        var order = SortedOrder(scores);
        double rankSumPos = 0;
        int i = 0;
        while (i < order.Length)
        {
            int j = i;
            while (j + 1 < order.Length && scores[order[j + 1]] == scores[order[i]]) j++;
            double averageRank = (i + j) / 2.0 + 1.0; // ranks are 1-based
            for (int k = i; k <= j; k++)
                if (labels[order[k]]) rankSumPos += averageRank;
            i = j + 1;
        }
        double u = rankSumPos - pos * (pos + 1.0) / 2.0;
        return u / ((double)pos * neg);
    }

    /// <summary>
    /// The ROC curve over every distinct score threshold, from (0, 0) (threshold +infinity) to (1, 1)
    /// (the lowest score), with tied scores kept in one step.
    /// </summary>
    /// <param name="scores">Scores, higher meaning more likely positive.</param>
    /// <param name="labels">True for positives.</param>
    /// <returns>Points in order of decreasing threshold, so non-decreasing FPR and TPR.</returns>
    /// <exception cref="UserInputException">Lengths differ, a score is NaN, or a class is absent.</exception>
    public static IReadOnlyList<RocPoint> RocCurve(ReadOnlySpan<double> scores, ReadOnlySpan<bool> labels)
    {
        var (pos, neg) = Validate(scores, labels);
        var order = SortedOrder(scores);
        var points = new List<RocPoint> { new(0, 0, double.PositiveInfinity) };
        int tp = 0, fp = 0;
        int i = order.Length - 1;
        while (i >= 0)
        {
            double t = scores[order[i]];
            while (i >= 0 && scores[order[i]] == t)
            {
                if (labels[order[i]]) tp++; else fp++;
                i--;
            }
            points.Add(new RocPoint((double)fp / neg, (double)tp / pos, t));
        }
        return points;
    }

    /// <summary>
    /// The largest true-positive rate over all thresholds whose false-positive rate does not exceed <paramref name="targetFpr"/>
    /// (for example 0.01 or 0.05).
    /// </summary>
    /// <param name="scores">Scores, higher meaning more likely positive.</param>
    /// <param name="labels">True for positives.</param>
    /// <param name="targetFpr">The largest false-positive rate allowed, in [0, 1].</param>
    /// <exception cref="UserInputException">Lengths differ, a score is NaN, a class is absent, or the target is outside [0, 1].</exception>
    public static double TprAtFpr(ReadOnlySpan<double> scores, ReadOnlySpan<bool> labels, double targetFpr)
    {
        if (!(targetFpr >= 0 && targetFpr <= 1)) throw new UserInputException("the target FPR must lie in [0, 1]");
        double best = 0;
        foreach (var p in RocCurve(scores, labels))
            if (p.Fpr <= targetFpr + 1e-12 && p.Tpr > best) best = p.Tpr;
        return best;
    }

    /// <summary>The share of examples classified correctly when those with score &gt;= <paramref name="threshold"/> are called positive.</summary>
    /// <param name="scores">Scores, higher meaning more likely positive.</param>
    /// <param name="labels">True for positives.</param>
    /// <param name="threshold">The decision threshold.</param>
    /// <exception cref="UserInputException">Lengths differ or the input is empty.</exception>
    public static double Accuracy(ReadOnlySpan<double> scores, ReadOnlySpan<bool> labels, double threshold)
    {
        if (scores.Length != labels.Length) throw new UserInputException("scores and labels differ in length");
        if (scores.Length == 0) throw new UserInputException("no examples");
        int correct = 0;
        for (int i = 0; i < scores.Length; i++)
            if ((scores[i] >= threshold) == labels[i]) correct++;
        return (double)correct / scores.Length;
    }

    /// <summary>
    /// Expected calibration error of predicted probabilities of the positive class: examples are put in
    /// <paramref name="bins"/> equal-width bins on [0, 1] (a probability of exactly 1 goes in the last bin), and the
    /// result is the example-weighted mean over bins of |mean probability - share of positives|.
    /// </summary>
    /// <param name="probabilities">Predicted probabilities of the positive class, in [0, 1].</param>
    /// <param name="labels">True for positives.</param>
    /// <param name="bins">The number of bins (10 by default).</param>
    /// <exception cref="UserInputException">Lengths differ, the input is empty, a probability is outside [0, 1], or bins &lt; 1.</exception>
    public static double ExpectedCalibrationError(ReadOnlySpan<double> probabilities, ReadOnlySpan<bool> labels, int bins = 10)
    {
        if (probabilities.Length != labels.Length) throw new UserInputException("probabilities and labels differ in length");
        if (probabilities.Length == 0) throw new UserInputException("no examples");
        if (bins < 1) throw new UserInputException("at least one bin is needed");
        var count = new int[bins];
        var sumP = new double[bins];
        var sumY = new double[bins];
        for (int i = 0; i < probabilities.Length; i++)
        {
            double p = probabilities[i];
            if (!(p >= 0 && p <= 1)) throw new UserInputException($"probability {p} at index {i} is outside [0, 1]");
            int b = Math.Min((int)(p * bins), bins - 1);
            count[b]++;
            sumP[b] += p;
            if (labels[i]) sumY[b] += 1;
        }
        double ece = 0;
        for (int b = 0; b < bins; b++)
            if (count[b] > 0) ece += Math.Abs(sumP[b] - sumY[b]) / probabilities.Length;
        return ece;
    }

    /// <summary>
    /// The largest threshold at which the recall (true-positive rate) on a validation set is at least
    /// <paramref name="targetRecall"/>: the k-th highest positive score, with k = ceil(target * positives) (at least 1).
    /// </summary>
    /// <param name="scores">Validation scores, higher meaning more likely positive.</param>
    /// <param name="labels">Validation labels, true for positives.</param>
    /// <param name="targetRecall">The recall to reach, in (0, 1].</param>
    /// <exception cref="UserInputException">Lengths differ, a score is NaN, there is no positive, or the target is outside (0, 1].</exception>
    public static double ThresholdForRecall(ReadOnlySpan<double> scores, ReadOnlySpan<bool> labels, double targetRecall)
    {
        if (!(targetRecall > 0 && targetRecall <= 1)) throw new UserInputException("the target recall must lie in (0, 1]");
        if (scores.Length != labels.Length) throw new UserInputException("scores and labels differ in length");
        var positives = new List<double>();
        for (int i = 0; i < scores.Length; i++)
        {
            if (double.IsNaN(scores[i])) throw new UserInputException($"score at index {i} is NaN");
            if (labels[i]) positives.Add(scores[i]);
        }
        if (positives.Count == 0) throw new UserInputException("no positive example");
        positives.Sort();
        positives.Reverse();
        int k = Math.Max(1, (int)Math.Ceiling(targetRecall * positives.Count - 1e-9));
        return positives[Math.Min(k, positives.Count) - 1];
    }

    /// <summary>The recall reached on a set when examples with score &gt;= <paramref name="threshold"/> are flagged.</summary>
    /// <param name="scores">Scores.</param>
    /// <param name="labels">Labels, true for positives.</param>
    /// <param name="threshold">The decision threshold.</param>
    /// <exception cref="UserInputException">Lengths differ or there is no positive.</exception>
    public static double Recall(ReadOnlySpan<double> scores, ReadOnlySpan<bool> labels, double threshold)
    {
        if (scores.Length != labels.Length) throw new UserInputException("scores and labels differ in length");
        int pos = 0, hit = 0;
        for (int i = 0; i < scores.Length; i++)
            if (labels[i]) { pos++; if (scores[i] >= threshold) hit++; }
        if (pos == 0) throw new UserInputException("no positive example");
        return (double)hit / pos;
    }

    /// <summary>The false-positive rate on a set when examples with score &gt;= <paramref name="threshold"/> are flagged.</summary>
    /// <param name="scores">Scores.</param>
    /// <param name="labels">Labels, true for positives.</param>
    /// <param name="threshold">The decision threshold.</param>
    /// <exception cref="UserInputException">Lengths differ or there is no negative.</exception>
    public static double FalsePositiveRate(ReadOnlySpan<double> scores, ReadOnlySpan<bool> labels, double threshold)
    {
        if (scores.Length != labels.Length) throw new UserInputException("scores and labels differ in length");
        int neg = 0, hit = 0;
        for (int i = 0; i < scores.Length; i++)
            if (!labels[i]) { neg++; if (scores[i] >= threshold) hit++; }
        if (neg == 0) throw new UserInputException("no negative example");
        return (double)hit / neg;
    }

    private static (int Pos, int Neg) Validate(ReadOnlySpan<double> scores, ReadOnlySpan<bool> labels)
    {
        if (scores.Length != labels.Length) throw new UserInputException("scores and labels differ in length");
        int pos = 0;
        for (int i = 0; i < scores.Length; i++)
        {
            if (double.IsNaN(scores[i])) throw new UserInputException($"score at index {i} is NaN");
            if (labels[i]) pos++;
        }
        int neg = scores.Length - pos;
        if (pos == 0 || neg == 0) throw new UserInputException("both classes must be present");
        return (pos, neg);
    }

    /// <summary>Indices sorted by ascending score (order within ties is irrelevant: ties are always grouped).</summary>
    private static int[] SortedOrder(ReadOnlySpan<double> scores)
    {
        var keys = scores.ToArray();
        var order = new int[keys.Length];
        for (int i = 0; i < order.Length; i++) order[i] = i;
        Array.Sort(keys, order);
        return order;
    }
}
