using System.Diagnostics;
using System.Text.Encodings.Web;
using System.Text.Json;
using SafeTune.Onnx;
using SafeTune.Runtime;

namespace SafeTune.Safety.Critics;

/// <summary>What to score: a judge spec and a (prompt, response) file.</summary>
public sealed record JudgeRunOptions
{
    /// <summary>The judge (<see cref="JudgeSpec"/> syntax).</summary>
    public required string Judge { get; init; }

    /// <summary>The data file, with optional row filters (<see cref="JudgeItemFile"/>).</summary>
    public required string Data { get; init; }

    /// <summary>The prompt column, or null to detect it.</summary>
    public string? PromptColumn { get; init; }

    /// <summary>The response column, or null to detect it.</summary>
    public string? ResponseColumn { get; init; }

    /// <summary>How the verdicts become one number.</summary>
    public JudgeAggregation Aggregation { get; init; } = JudgeAggregation.Mean;

    /// <summary>Items per judge call (progress is reported after each).</summary>
    public int ChunkSize { get; init; } = 64;
}

/// <summary>The outcome of <see cref="JudgeRun.ScoreFileAsync"/>.</summary>
/// <param name="JudgeName">The judge's description.</param>
/// <param name="Items">The items scored, in file order.</param>
/// <param name="Verdicts">One verdict per item.</param>
/// <param name="Summary">Counts, mean, max, histogram and failures.</param>
/// <param name="Aggregation">How <paramref name="Aggregate"/> was formed.</param>
/// <param name="Aggregate">The verdicts as one number (<see cref="SafetyJudges.Aggregate"/>).</param>
/// <param name="Stats">What the judge counted during this run (for judges that count; null otherwise).</param>
/// <param name="Seconds">Wall-clock seconds of the scoring.</param>
public sealed record JudgeRunResult(string JudgeName, IReadOnlyList<JudgeItem> Items, IReadOnlyList<JudgeVerdict> Verdicts, JudgeSummary Summary,
    JudgeAggregation Aggregation, double Aggregate, JudgeStatsSnapshot? Stats, double Seconds)
{
    /// <summary>Each item's id from the data file (null where a record has none); null when the items came without ids.</summary>
    public IReadOnlyList<string?>? Ids { get; init; }

    /// <summary>
    /// Writes one JSON line per item, atomically: <c>{"index", "id", "prompt", "score", "failed", "reason", "error"}</c>
    /// (<c>id</c> only where the record has one, the last two only for failed items). <c>index</c> is 0-based, in file order.
    /// </summary>
    public void WriteScores(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        AtomicFile.Write(path, stream =>
        {
            var options = new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
            for (int i = 0; i < Verdicts.Count; i++)
            {
                using (var w = new Utf8JsonWriter(stream, options))
                {
                    var v = Verdicts[i];
                    w.WriteStartObject();
                    w.WriteNumber("index", i);
                    if (Ids?[i] is { } id) w.WriteString("id", id);
                    w.WriteString("prompt", Items[i].Prompt);
                    w.WriteNumber("score", v.Score);
                    w.WriteBoolean("failed", v.Failed);
                    if (v.Failed)
                    {
                        w.WriteString("reason", JudgeFailureReasons.Of(v));
                        w.WriteString("error", v.Error);
                    }
                    w.WriteEndObject();
                }
                stream.WriteByte((byte)'\n');
            }
        });
    }
}

/// <summary>Progress of <see cref="JudgeRun.ScoreFileAsync"/>.</summary>
/// <param name="Done">Items scored so far.</param>
/// <param name="Total">Items in the file.</param>
public readonly record struct JudgeRunProgress(int Done, int Total);

/// <summary>Scores a data file with a judge: the library side of <c>safetune critic score</c>.</summary>
public static class JudgeRun
{
    /// <summary>
    /// Reads the items, builds the judge, scores everything in chunks (reporting progress once the file is read and
    /// after each chunk) and summarises.
    /// Items the judge cannot score are failed closed and counted, not errors.
    /// </summary>
    /// <exception cref="UserInputException">The judge spec is bad.</exception>
    /// <exception cref="InvalidDataException">The data file is empty or malformed, or lacks a column.</exception>
    /// <exception cref="FileNotFoundException">The data file (or a file the spec names) does not exist.</exception>
    public static async Task<JudgeRunResult> ScoreFileAsync(JudgeRunOptions options, IProgress<JudgeRunProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var rows = JudgeItemFile.ReadRows(options.Data, options.PromptColumn, options.ResponseColumn);
        var items = rows.Select(r => r.Item).ToList();
        progress?.Report(new JudgeRunProgress(0, items.Count));
        using var judge = JudgeSpec.Parse(options.Judge);
        var stats = judge as IJudgeStatsSource;
        var before = stats?.Stats.Snapshot();
        var clock = Stopwatch.StartNew();
        var verdicts = await JudgeScoring.ScoreInChunksAsync(judge, items, options.ChunkSize,
            progress is null ? null : new SynchronousProgress<int>(done => progress.Report(new JudgeRunProgress(done, items.Count))), cancellationToken).ConfigureAwait(false);
        clock.Stop();
        return new JudgeRunResult(judge.Name, items, verdicts, JudgeSummary.Of(verdicts), options.Aggregation,
            SafetyJudges.Aggregate(verdicts, options.Aggregation), stats?.Stats.Snapshot().Since(before!), clock.Elapsed.TotalSeconds)
        {
            Ids = [.. rows.Select(r => r.Id)],
        };
    }
}
