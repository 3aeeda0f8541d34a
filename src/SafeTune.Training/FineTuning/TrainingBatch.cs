using SafeTune.Autodiff.Losses;
using SafeTune.Runtime.Training;
using SafeTune.Training.Data;

namespace SafeTune.Training.FineTuning;

/// <summary>One example in a batch: its id, the texts a judge reads, and its place in the batch.</summary>
/// <param name="Id">The example's stable id (file and line, or a name).</param>
/// <param name="Prompt">The user's request (the last user message).</param>
/// <param name="Response">The target response the example trains toward.</param>
/// <param name="Row">The batch row holding it.</param>
/// <param name="Start">Its first token's position in the row.</param>
/// <param name="Length">Its token count.</param>
/// <param name="PromptLength">How many of its tokens are prompt tokens.</param>
public sealed record TrainingExample(string Id, string Prompt, string Response, int Row, int Start, int Length, int PromptLength);

/// <summary>
/// A micro-batch as the fine-tuning loop consumes it: the token batch (labels -100 outside the responses), a prompt
/// mask (1 on the prompt tokens — everything before an example's response — 0 on responses and padding), and the
/// examples it holds (one per row when padded, several when packed).
/// </summary>
public sealed record TrainingBatch(TokenBatch Tokens, long[] PromptMask, IReadOnlyList<TrainingExample> Examples)
{
    /// <summary>The number of response tokens (labels that count).</summary>
    public int ResponseTokens => Tokens.Labels.Count(l => l != LossNames.IgnoreIndex);

    /// <summary>True when every row holds exactly one example (so per-row features, such as a probe's, are per example).</summary>
    public bool OneExamplePerRow => Examples.Count == Tokens.BatchSize && Examples.Select(e => e.Row).Distinct().Count() == Tokens.BatchSize;

    /// <summary>The flat indices of the response tokens (see <see cref="ResponseLosses.Index"/>).</summary>
    public long[] ResponseIndex() => ResponseLosses.Index(Tokens.Labels);

    /// <summary>
    /// For each response token, in row-major order: the index of its example in <see cref="Examples"/> and its position
    /// within that example's response (from 0).
    /// </summary>
    public (int Example, int T)[] ResponseTokenPositions()
    {
        var byRow = Examples.Select((e, i) => (e, i)).GroupBy(x => x.e.Row).ToDictionary(g => g.Key, g => g.OrderBy(x => x.e.Start).ToArray());
        var result = new List<(int, int)>(ResponseTokens);
        int len = Tokens.SequenceLength;
        for (int r = 0; r < Tokens.BatchSize; r++)
        {
            byRow.TryGetValue(r, out var segments);
            int current = -1, t = 0;
            for (int p = 0; p < len; p++)
            {
                if (Tokens.Labels[r * len + p] == LossNames.IgnoreIndex) continue;
                // The logits at p predict token p + 1, so p belongs to the example that holds position p.
                var owner = segments?.FirstOrDefault(s => s.e.Start <= p && p < s.e.Start + s.e.Length)
                    ?? throw new InvalidDataException($"row {r}: response position {p} lies in no example.");
                if (owner.i != current) { current = owner.i; t = 0; }
                result.Add((owner.i, t++));
            }
        }
        return [.. result];
    }

    /// <summary>The loop's view of a data-pipeline micro-batch.</summary>
    public static TrainingBatch From(SftMicroBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var list = new List<TrainingExample>();
        for (int r = 0; r < batch.Rows.Count; r++)
            foreach (var s in batch.Rows[r].Segments)
                list.Add(new TrainingExample(s.ExampleId, s.Example.Example.Prompt, s.Example.Example.Response, r, s.Start, s.Length, s.PromptLength));
        return new TrainingBatch(batch.Tokens, batch.PromptMask, list);
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

/// <summary>A plan over a data set: the steps of an <see cref="SftBatcher"/> for a number of epochs or steps.</summary>
/// <param name="Batcher">The batcher.</param>
/// <param name="Steps">The run's length (for example <c>batcher.StepsFor(epochs)</c>).</param>
public sealed record SftPlan(SftBatcher Batcher, long Steps) : ITrainingPlan
{
    /// <inheritdoc/>
    public IReadOnlyList<TrainingBatch> Step(long step) => [.. Batcher.GetStep(step).MicroBatches.Select(TrainingBatch.From)];
}
