using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SafeTune.Onnx;

namespace SafeTune.Training.FineTuning;

/// <summary>
/// Everything a fine-tuning run keeps, in one folder:
/// <code>
/// RUN/options.json      the resolved options
/// RUN/audit.jsonl       one line per optimizer step: risk, beta, losses, learning rate, example ids, judge failures
/// RUN/metrics.jsonl     one line per step (loss, speed) and one per evaluation
/// RUN/checkpoints/      the latest complete checkpoint (see Checkpoint)
/// RUN/model.onnx        the merged output model: the input graph with the trained weights
/// RUN/model-kv.onnx     the same weights in the key/value-cache graph, when one was given
/// RUN/summary.json      the run's result, written last
/// </code>
/// Log lines are appended and flushed as each step ends. A resumed run first rewrites both logs (atomically) without
/// the lines of steps after its checkpoint, so the logs always match the weights.
/// </summary>
public sealed class RunFolder : IDisposable
{
    private static readonly JsonSerializerOptions Compact = new() { WriteIndented = false };
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };
    private StreamWriter? _audit, _metrics;

    /// <summary>Opens (creating) a run folder.</summary>
    public RunFolder(string directory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        Directory = Path.GetFullPath(directory);
        System.IO.Directory.CreateDirectory(Directory);
    }

    /// <summary>The folder.</summary>
    public string Directory { get; }

    /// <summary>The checkpoint folder.</summary>
    public string Checkpoints => Path.Combine(Directory, "checkpoints");

    /// <summary>The audit log.</summary>
    public string AuditPath => Path.Combine(Directory, "audit.jsonl");

    /// <summary>The metrics log.</summary>
    public string MetricsPath => Path.Combine(Directory, "metrics.jsonl");

    /// <summary>The merged output model.</summary>
    public string ModelPath => Path.Combine(Directory, "model.onnx");

    /// <summary>The output model's key/value-cache graph.</summary>
    public string GenerationModelPath => Path.Combine(Directory, "model-kv.onnx");

    /// <summary>The summary, written when the run ends.</summary>
    public string SummaryPath => Path.Combine(Directory, "summary.json");

    /// <summary>Writes <c>options.json</c> atomically.</summary>
    public void WriteOptions(JsonObject options) => AtomicFile.WriteAllText(Path.Combine(Directory, "options.json"), options.ToJsonString(Indented));

    /// <summary>Writes <c>summary.json</c> atomically.</summary>
    public void WriteSummary(JsonObject summary) => AtomicFile.WriteAllText(SummaryPath, summary.ToJsonString(Indented));

    /// <summary>Opens the logs for appending; on a fresh run (<paramref name="keepThroughStep"/> null) they start empty, else
    /// lines with a <c>step</c> above it are dropped first.</summary>
    public void OpenLogs(long? keepThroughStep)
    {
        foreach (var path in new[] { AuditPath, MetricsPath })
        {
            if (keepThroughStep is not { } keep) { if (File.Exists(path)) File.Delete(path); continue; }
            if (!File.Exists(path)) continue;
            var kept = File.ReadLines(path).Where(l => StepOf(l) is not { } s || s <= keep).ToList();
            AtomicFile.WriteAllText(path, kept.Count == 0 ? "" : string.Join('\n', kept) + "\n");
        }
        _audit = Append(AuditPath);
        _metrics = Append(MetricsPath);
    }

    private static StreamWriter Append(string path) =>
        new(new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read), new UTF8Encoding(false)) { AutoFlush = false };

    private static long? StepOf(string line)
    {
        if (string.IsNullOrWhiteSpace(line)) return long.MaxValue; // blank or torn lines go
        try
        {
            return JsonNode.Parse(line)?["step"]?.GetValue<long>();
        }
        catch (JsonException)
        {
            return long.MaxValue;
        }
    }

    /// <summary>Appends one line to the audit log and flushes it.</summary>
    public void Audit(JsonObject line) => Write(_audit, line);

    /// <summary>Appends one line to the metrics log and flushes it.</summary>
    public void Metric(JsonObject line) => Write(_metrics, line);

    private static void Write(StreamWriter? w, JsonObject line)
    {
        if (w is null) throw new InvalidOperationException("the run's logs are not open.");
        w.Write(line.ToJsonString(Compact));
        w.Write('\n');
        w.Flush();
    }

    /// <summary>Reads every line of a JSONL log.</summary>
    public static IReadOnlyList<JsonObject> ReadLog(string path) =>
        File.Exists(path) ? [.. File.ReadLines(path).Where(l => l.Trim().Length > 0).Select(l => JsonNode.Parse(l)!.AsObject())] : [];

    /// <inheritdoc/>
    public void Dispose()
    {
        _audit?.Dispose();
        _metrics?.Dispose();
    }
}
