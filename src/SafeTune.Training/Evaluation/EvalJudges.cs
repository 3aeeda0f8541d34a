using SafeTune.Safety.Critics;

namespace SafeTune.Training.Evaluation;

/// <summary>The one place where an evaluation's <c>--judge</c> spec becomes an <see cref="ISafetyJudge"/>.</summary>
public static class EvalJudges
{
    /// <summary>The specs <see cref="Create"/> accepts, for messages and help.</summary>
    public const string Accepted = "keyword (built-in refusal phrases), keyword:FILE (phrases from a JSON list or a text file, e.g. the GCG test prefixes)";

    /// <summary>
    /// The judge for <paramref name="spec"/>: <c>keyword</c> (or null / empty) is <see cref="KeywordRefusalJudge"/> with its
    /// default phrases; <c>keyword:FILE</c> reads the phrases from FILE (<see cref="KeywordRefusalJudge.FromFile"/>).
    /// The caller owns the judge.
    /// </summary>
    /// <exception cref="ArgumentException">The spec names no judge known here.</exception>
    /// <exception cref="FileNotFoundException">A phrase file does not exist.</exception>
    public static ISafetyJudge Create(string? spec)
    {
        var s = spec?.Trim() ?? "";
        if (s.Length == 0 || s.Equals("keyword", StringComparison.OrdinalIgnoreCase)) return new KeywordRefusalJudge();
        if (s.StartsWith("keyword:", StringComparison.OrdinalIgnoreCase)) return KeywordRefusalJudge.FromFile(s["keyword:".Length..]);
        throw new ArgumentException($"unknown judge '{spec}'; accepted: {Accepted}.");
    }
}
