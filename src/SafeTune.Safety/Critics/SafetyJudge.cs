using SafeTune.Onnx;

namespace SafeTune.Safety.Critics;

/// <summary>One thing a judge scores: a user prompt and the response it got (or the target response of a training example).</summary>
/// <param name="Prompt">The user's request.</param>
/// <param name="Response">The assistant's reply (generated, or the training target).</param>
public sealed record JudgeItem(string Prompt, string Response);

/// <summary>
/// A judge's verdict on one item on the 1-5 harmfulness rubric (adapted from Qi et al.'s GPT-4 judge): 1 is a proper
/// refusal or harmless help, 5 is full compliance with a harmful request.
/// </summary>
/// <param name="Score">The score, in [1, 5]. A failed item scores <see cref="MaxScore"/> (fail closed).</param>
/// <param name="Failed">True when the judge could not score the item (timeout, error, unparseable answer).</param>
/// <param name="Error">Why it failed, when it did; never holds credentials.</param>
public readonly record struct JudgeVerdict(double Score, bool Failed = false, string? Error = null)
{
    /// <summary>The lowest score: a refusal or harmless help.</summary>
    public const double MinScore = 1;

    /// <summary>The highest score: full compliance with a harmful request.</summary>
    public const double MaxScore = 5;

    /// <summary>A verdict for an item the judge could not score: it counts as fully harmful (fail closed).</summary>
    public static JudgeVerdict FailClosed(string error) => new(MaxScore, true, error);

    /// <summary>
    /// A fail-closed verdict (score <see cref="MaxScore"/>) with a short failure key for counting, such as
    /// <see cref="JudgeFailureReasons.Timeout"/> or <c>http_503</c>.
    /// </summary>
    public static JudgeVerdict FailClosed(string error, string reason) => new(MaxScore, true, error) { Reason = reason };

    /// <summary>
    /// Why the item failed, as a short key for counting (<see cref="JudgeFailureReasons"/>); null when it did not fail
    /// or the judge gave no key (such failures count as <see cref="JudgeFailureReasons.Other"/>).
    /// </summary>
    public string? Reason { get; init; }

    /// <summary>The score mapped onto [0, 1]: (score - 1) / 4.</summary>
    public double Unit => (Score - MinScore) / (MaxScore - MinScore);
}

/// <summary>
/// A Safety Critic: scores (prompt, response) pairs on the 1-5 rubric. Implementations must fail closed: an item they
/// cannot score is returned as <see cref="JudgeVerdict.FailClosed(string, string)"/>, never dropped and never scored low.
/// </summary>
public interface ISafetyJudge : IDisposable
{
    /// <summary>A short description for logs and reports (never a credential).</summary>
    string Name { get; }

    /// <summary>Scores every item; the result has one verdict per item, in order.</summary>
    Task<IReadOnlyList<JudgeVerdict>> ScoreAsync(IReadOnlyList<JudgeItem> items, CancellationToken cancellationToken = default);
}

/// <summary>How the verdicts of a batch's items become the batch's risk.</summary>
public enum JudgeAggregation
{
    /// <summary>The mean score of the batch (the paper's choice).</summary>
    Mean,
    /// <summary>The highest score in the batch.</summary>
    Max,
    /// <summary>Every example keeps its own score (per-example weighting).</summary>
    PerExample,
}

/// <summary>Helpers over judges and verdicts.</summary>
public static class SafetyJudges
{
    /// <summary>Scores synchronously (for training loops, which are synchronous).</summary>
    public static IReadOnlyList<JudgeVerdict> Score(this ISafetyJudge judge, IReadOnlyList<JudgeItem> items, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(judge);
        var verdicts = judge.ScoreAsync(items, cancellationToken).GetAwaiter().GetResult();
        if (verdicts.Count != items.Count)
            throw new InvalidOperationException($"judge '{judge.Name}' returned {verdicts.Count} verdicts for {items.Count} items.");
        return verdicts;
    }

    /// <summary>
    /// The batch score of <paramref name="verdicts"/>: the mean or the max. For <see cref="JudgeAggregation.PerExample"/>
    /// use the verdicts themselves; this returns their mean, for logging.
    /// </summary>
    public static double Aggregate(IReadOnlyList<JudgeVerdict> verdicts, JudgeAggregation aggregation)
    {
        ArgumentNullException.ThrowIfNull(verdicts);
        if (verdicts.Count == 0) throw new UserInputException("there are no verdicts to aggregate.");
        return aggregation == JudgeAggregation.Max ? verdicts.Max(v => v.Score) : verdicts.Average(v => v.Score);
    }

    /// <summary>Parses <c>mean</c>, <c>max</c> or <c>per-example</c>.</summary>
    public static JudgeAggregation ParseAggregation(string text) => text.Trim().ToLowerInvariant() switch
    {
        "mean" => JudgeAggregation.Mean,
        "max" => JudgeAggregation.Max,
        "per-example" or "per_example" or "example" => JudgeAggregation.PerExample,
        _ => throw new UserInputException($"unknown aggregation '{text}'; use mean, max or per-example."),
    };
}
