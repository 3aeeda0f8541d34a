using SafeTune.Autodiff.Losses;
using SafeTune.Runtime.Training;

namespace SafeTune.Training.FineTuning;

/// <summary>One example's row in a batch: its id and the texts a judge reads.</summary>
/// <param name="Id">The example's stable id (file and line, or a name).</param>
/// <param name="Prompt">The user's request (the last user message).</param>
/// <param name="Response">The target response the example trains toward.</param>
public sealed record TrainingRow(string Id, string Prompt, string Response);

/// <summary>
/// A micro-batch as the fine-tuning loop consumes it: the token batch (labels -100 outside the responses), a prompt
/// mask (1 on each row's prompt tokens — everything before its response — 0 on the response and on padding), and the
/// rows' examples.
/// </summary>
public sealed record TrainingBatch(TokenBatch Tokens, long[] PromptMask, IReadOnlyList<TrainingRow> Rows)
{
    /// <summary>The number of response tokens (labels that count).</summary>
    public int ResponseTokens => Tokens.Labels.Count(l => l != LossNames.IgnoreIndex);

    /// <summary>The flat indices of the response tokens (see <see cref="ResponseLosses.Index"/>).</summary>
    public long[] ResponseIndex() => ResponseLosses.Index(Tokens.Labels);

    /// <summary>For each response token, in order: its row and its position within that row's response (from 0).</summary>
    public (int Row, int T)[] ResponseTokenPositions()
    {
        var result = new List<(int, int)>(ResponseTokens);
        for (int r = 0; r < Tokens.BatchSize; r++)
        {
            int t = 0;
            for (int p = 0; p < Tokens.SequenceLength; p++)
                if (Tokens.Labels[r * Tokens.SequenceLength + p] != LossNames.IgnoreIndex) result.Add((r, t++));
        }
        return [.. result];
    }
}

/// <summary>The batches of every optimizer step of a run, reproducible from the step index (so a resumed run sees the same data).</summary>
public interface ITrainingPlan
{
    /// <summary>Optimizer steps in the run.</summary>
    long Steps { get; }

    /// <summary>The micro-batches of step <paramref name="step"/> (from 0); their gradients are accumulated into one update.</summary>
    IReadOnlyList<TrainingBatch> Step(long step);
}
