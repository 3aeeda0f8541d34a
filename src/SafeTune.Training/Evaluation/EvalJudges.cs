using SafeTune.Safety.Critics;

namespace SafeTune.Training.Evaluation;

/// <summary>The one place where an evaluation's <c>--judge</c> spec becomes an <see cref="ISafetyJudge"/>.</summary>
internal static class EvalJudges
{
    /// <summary>The specs <see cref="Create"/> accepts, for help texts (<see cref="JudgeSpec.Syntax"/> lists every registered scheme).</summary>
    public const string Accepted = "a judge spec: keyword, keyword:FILE, openai:BASE_URL?model=NAME&key_env=VAR..., onnx:JUDGE (a local classifier judge) or minilm";

    /// <summary>
    /// The judge for <paramref name="spec"/> (see <see cref="JudgeSpec.Parse"/>); null or empty is the keyword refusal judge
    /// with its default phrases. The caller owns the judge.
    /// </summary>
    /// <exception cref="SafeTune.Onnx.UserInputException">The spec names no known judge or has a bad option.</exception>
    /// <exception cref="FileNotFoundException">A file named by the spec does not exist.</exception>
    public static ISafetyJudge Create(string? spec) =>
        string.IsNullOrWhiteSpace(spec) ? new KeywordRefusalJudge() : JudgeSpec.Parse(spec.Trim());
}
