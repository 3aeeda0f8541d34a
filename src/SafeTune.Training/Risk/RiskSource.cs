using SafeTune.Runtime.Training;
using SafeTune.Training.FineTuning;

namespace SafeTune.Training.Risk;

/// <summary>One risk per example of a batch (in <see cref="TrainingBatch.Examples"/> order), in [0, 1], and the number of examples the source failed to score (counted as risk 1).</summary>
internal sealed record RiskScores(double[] PerExample, int Failures);

/// <summary>
/// Where a batch's safety risk comes from. A source may extend the frozen reference pass (a probe fused into the
/// reference graph reads the starting model's own prompt activations there, with no extra forward pass).
/// </summary>
public abstract class RiskSource : IDisposable
{
    /// <summary>A description for logs and reports.</summary>
    public abstract string Name { get; }

    /// <summary>True when <see cref="Score"/> reads the reference pass's outputs.</summary>
    public virtual bool NeedsReferencePass => false;

    /// <summary>Extends the reference graph (returns the outputs added); null when the source does not.</summary>
    public virtual Func<Onnx.Model, IReadOnlyList<string>>? ExtendReference => null;

    /// <summary>Scores the examples of <paramref name="batch"/>; <paramref name="reference"/> holds the reference pass's outputs when it ran.</summary>
    internal abstract RiskScores Score(TrainingBatch batch, ReferenceOutputs? reference);

    /// <inheritdoc/>
    public virtual void Dispose() { }

    /// <summary>
    /// The values of <paramref name="batch"/>'s examples, in order, remembered by id in <paramref name="seen"/>: examples not
    /// seen before (each id once, in batch order) are valued by <paramref name="score"/> first, so each is scored once per run.
    /// </summary>
    protected static T[] ScoreOnce<T>(Dictionary<string, T> seen, TrainingBatch batch, Func<List<TrainingExample>, IReadOnlyList<T>> score)
    {
        var todo = batch.Examples.Where(r => !seen.ContainsKey(r.Id)).DistinctBy(r => r.Id).ToList();
        if (todo.Count > 0)
        {
            var values = score(todo);
            for (int i = 0; i < todo.Count; i++) seen[todo[i].Id] = values[i];
        }
        return [.. batch.Examples.Select(r => seen[r.Id])];
    }
}
