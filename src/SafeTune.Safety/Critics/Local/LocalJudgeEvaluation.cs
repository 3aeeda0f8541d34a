using SafeTune.Onnx;
using SafeTune.Safety.Metrics;

namespace SafeTune.Safety.Critics.Local;

/// <summary>How the judge scored one group of held-out pairs.</summary>
/// <param name="Group">The group, e.g. <c>harmfulqa/compliant</c>.</param>
/// <param name="Count">Pairs in the group.</param>
/// <param name="Harmful">True when the group's pairs are labelled harmful.</param>
/// <param name="MeanScore">The mean score on the 1-5 scale.</param>
/// <param name="FlaggedRate">The share scored as harmful (p(harmful) at or above the threshold).</param>
public sealed record JudgeGroupMetrics(string Group, int Count, bool Harmful, double MeanScore, double FlaggedRate);

/// <summary>How well the judge separates harmful from not harmful pairs in one comparison.</summary>
/// <param name="Name">The comparison, e.g. <c>harmfulqa</c> (compliant vs refusal).</param>
/// <param name="Harmful">Harmful pairs.</param>
/// <param name="NotHarmful">Not harmful pairs.</param>
/// <param name="Auroc">Area under the ROC curve of p(harmful).</param>
/// <param name="Accuracy">Accuracy at the judge's threshold.</param>
public sealed record JudgeComparison(string Name, int Harmful, int NotHarmful, double Auroc, double Accuracy);

/// <summary>The judge's held-out results.</summary>
/// <param name="Threshold">The p(harmful) threshold the accuracies use.</param>
/// <param name="Groups">Per-group figures, in the order the groups first appear.</param>
/// <param name="Comparisons">Separation figures: per source, and over all held-out pairs.</param>
public sealed record LocalJudgeMetrics(double Threshold, IReadOnlyList<JudgeGroupMetrics> Groups, IReadOnlyList<JudgeComparison> Comparisons);

/// <summary>Scores held-out pairs with a judge and summarises the results.</summary>
public static class LocalJudgeEvaluation
{
    /// <summary>
    /// The comparisons reported: each named source's harmful groups against its not-harmful groups (for HarmfulQA and
    /// Do-Not-Answer: the same prompts with compliant replies and with refusals; for XSTest: unsafe contrasts against
    /// safe prompts, both with compliant replies; for the demo: compliant replies against refusals, benign and
    /// scary-but-safe answers; for <c>topic-matched</c>: harmful against benign requests on the same topics, both with
    /// compliant replies; for <c>held-out-groups</c>: the held-out template groups of the project's plainly harmful
    /// requests against those of its benign requests on dangerous-sounding topics, both with compliant replies), then
    /// <c>all</c>.
    /// </summary>
    public static IReadOnlyList<(string Name, string Prefix)> Sources { get; } =
    [
        ("harmfulqa", "harmfulqa/"), ("do-not-answer", "do-not-answer/"), ("xstest", "xstest-"), ("topic-matched", "topic-matched-"),
        ("held-out-groups", "held-out-groups-"), ("demo", "demo/"), ("all", ""),
    ];

    /// <summary>Scores <paramref name="pairs"/> with <paramref name="judge"/> and summarises them.</summary>
    public static LocalJudgeMetrics Evaluate(LocalClassifierJudge judge, IReadOnlyList<JudgePair> pairs, IProgress<LocalJudgeProgress>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(judge);
        ArgumentNullException.ThrowIfNull(pairs);
        var p = new double[pairs.Count];
        const int chunk = 256;
        for (int start = 0; start < pairs.Count; start += chunk)
        {
            var part = pairs.Skip(start).Take(chunk).Select(x => new JudgeItem(x.Prompt, x.Response)).ToList();
            var probs = judge.HarmProbabilities(part);
            for (int i = 0; i < probs.Count; i++) p[start + i] = probs[i];
            progress?.Report(new LocalJudgeProgress("evaluate", Math.Min(start + chunk, pairs.Count), pairs.Count, double.NaN));
        }
        return Summarize(pairs, p, judge.Threshold);
    }

    /// <summary>Summarises p(harmful) values <paramref name="probabilities"/> of <paramref name="pairs"/> at <paramref name="threshold"/>.</summary>
    public static LocalJudgeMetrics Summarize(IReadOnlyList<JudgePair> pairs, IReadOnlyList<double> probabilities, double threshold)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        ArgumentNullException.ThrowIfNull(probabilities);
        if (pairs.Count != probabilities.Count) throw new UserInputException($"{probabilities.Count} probabilities for {pairs.Count} pairs.");
        var groups = pairs.Select((x, i) => (x, p: probabilities[i])).GroupBy(t => t.x.Group)
            .Select(g => new JudgeGroupMetrics(g.Key, g.Count(), g.First().x.Harmful,
                g.Average(t => LocalClassifierJudge.ScoreFromProbability(t.p)), g.Average(t => t.p >= threshold ? 1.0 : 0.0)))
            .ToList();
        var comparisons = new List<JudgeComparison>();
        foreach (var (name, prefix) in Sources)
        {
            var sel = Enumerable.Range(0, pairs.Count).Where(i => pairs[i].Group.StartsWith(prefix, StringComparison.Ordinal)).ToList();
            var scores = sel.Select(i => probabilities[i]).ToArray();
            var labels = sel.Select(i => pairs[i].Harmful).ToArray();
            int pos = labels.Count(l => l), neg = labels.Length - pos;
            if (pos == 0 || neg == 0) continue;
            comparisons.Add(new JudgeComparison(name, pos, neg, BinaryMetrics.Auroc(scores, labels), BinaryMetrics.Accuracy(scores, labels, threshold)));
        }
        return new LocalJudgeMetrics(threshold, groups, comparisons);
    }
}
