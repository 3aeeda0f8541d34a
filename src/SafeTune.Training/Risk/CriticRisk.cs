using SafeTune.Runtime.Training;
using SafeTune.Safety.Critics;
using SafeTune.Training.FineTuning;

namespace SafeTune.Training.Risk;

/// <summary>
/// A Safety Critic on each example's prompt and target response: risk = (score - 1) / 4. Verdicts are remembered by
/// example id, so an example is judged once per run. Failed verdicts are fail-closed (score 5, risk 1) and counted.
/// </summary>
internal sealed class CriticRisk(ISafetyJudge judge) : RiskSource
{
    private readonly Dictionary<string, JudgeVerdict> _seen = new(StringComparer.Ordinal);

    public ISafetyJudge Judge { get; } = judge;

    /// <summary>Items the judge failed on so far (each counted once).</summary>
    public int Failures => _seen.Values.Count(v => v.Failed);

    /// <summary>Items judged so far.</summary>
    public int Judged => _seen.Count;

    /// <inheritdoc/>
    public override string Name => "critic " + Judge.Name;

    /// <inheritdoc/>
    internal override RiskScores Score(TrainingBatch batch, ReferenceOutputs? reference)
    {
        var scored = ScoreOnce(_seen, batch, todo => Judge.Score([.. todo.Select(r => new JudgeItem(r.Prompt, r.Response))]));
        return new RiskScores([.. scored.Select(v => v.Unit)], scored.Count(v => v.Failed));
    }

    /// <inheritdoc/>
    public override void Dispose() => Judge.Dispose();
}
