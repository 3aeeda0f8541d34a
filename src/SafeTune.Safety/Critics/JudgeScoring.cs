namespace SafeTune.Safety.Critics;

/// <summary>Scoring of long item lists in chunks, with progress.</summary>
public static class JudgeScoring
{
    /// <summary>
    /// Scores <paramref name="items"/> in chunks of <paramref name="chunkSize"/>, reporting the number of items done
    /// after each chunk. The verdicts are those of one call per chunk, in order; a judge that returns the wrong number
    /// of verdicts is an error.
    /// </summary>
    public static async Task<IReadOnlyList<JudgeVerdict>> ScoreInChunksAsync(ISafetyJudge judge, IReadOnlyList<JudgeItem> items, int chunkSize = 64,
        IProgress<int>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(judge);
        ArgumentNullException.ThrowIfNull(items);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkSize, 1);
        var verdicts = new List<JudgeVerdict>(items.Count);
        for (int start = 0; start < items.Count; start += chunkSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var chunk = items.Skip(start).Take(chunkSize).ToArray();
            var scored = await judge.ScoreAsync(chunk, cancellationToken).ConfigureAwait(false);
            if (scored.Count != chunk.Length)
                throw new InvalidOperationException($"judge '{judge.Name}' returned {scored.Count} verdicts for {chunk.Length} items.");
            verdicts.AddRange(scored);
            progress?.Report(verdicts.Count);
        }
        return verdicts;
    }
}
