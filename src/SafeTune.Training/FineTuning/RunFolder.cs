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
internal sealed class RunFolder : IDisposable
{
    private static readonly JsonSerializerOptions Compact = new() { WriteIndented = false };
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };
    private StreamWriter? _audit, _metrics;

    /// <summary>Opens (creating) a run folder.</summary>
    public RunFolder(string directory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        Directory = Path.GetFullPath(directory);
        var kind = SafePaths.KindOf(Directory);
        if (kind is not (FileKind.Missing or FileKind.Directory))
            throw new OptionException("out", $"{directory}: is {SafePaths.Describe(kind)}; a run folder ({{out}}) must be a folder or not exist yet.");
        try { System.IO.Directory.CreateDirectory(Directory); }
        catch (IOException e) { throw new OutputFileException($"{directory}: the run folder cannot be created ({e.Message.TrimEnd('.')}).", e); }
    }

    /// <summary>The files a run leaves; any of them means the folder holds a run.</summary>
    private IEnumerable<string> RunFiles =>
        [OptionsPath, AuditPath, MetricsPath, ModelPath, GenerationModelPath, SummaryPath, Path.Combine(Checkpoints, "state.json")];

    /// <summary>True when the folder holds (part of) a run: options, logs, a checkpoint or an output model.</summary>
    public bool HoldsRun => RunFiles.Any(File.Exists);

    /// <summary>Removes the run the folder holds (checkpoints, logs, outputs), leaving files it does not know.</summary>
    public void Clear()
    {
        foreach (var f in RunFiles) if (File.Exists(f)) File.Delete(f);
        if (System.IO.Directory.Exists(Checkpoints))
            foreach (var f in System.IO.Directory.EnumerateFiles(Checkpoints, "*.safetensors")) File.Delete(f);
    }

    /// <summary>The recorded options.</summary>
    public string OptionsPath => Path.Combine(Directory, "options.json");

    /// <summary>
    /// Compares the settings <paramref name="asked"/> for a resume with the recorded <c>options.json</c> and throws
    /// <see cref="UserInputException"/> naming every difference, by its command-line option where there is one. The execution
    /// provider may change. Where both record the <c>inputs</c> (<see cref="InputFiles"/>), the content of every file is
    /// compared too, so a file changed in place is named; a run recorded without them is compared on what it recorded.
    /// </summary>
    /// <param name="asked">The settings of the resumed run, as <see cref="TrainJob"/> records them.</param>
    /// <param name="force">
    /// Allow the differences that are safe to continue with, and only those: more steps (or epochs) than recorded, and a
    /// file given at another path whose content is identical (the same SHA-256, so only recorded runs qualify). Everything
    /// that changes what is trained or how is still refused: a changed file's content, the model, tokenizer, template,
    /// data, row limits, base dtype, method, beta map, risk source, penalty, learning rate, warm-up, schedule, optimizer, clipping,
    /// seed, batch and micro-batch size, maximum length, packing and LoRA. Settings that do not touch training (the
    /// execution provider, threads, checkpoint interval, progress output) are not recorded and may always change.
    /// </param>
    /// <returns>The differences allowed by <paramref name="force"/>, settings spelled as on the command line (empty when the settings are the same).</returns>
    public IReadOnlyList<string> RequireSameOptions(JsonObject asked, bool force = false)
    {
        ArgumentNullException.ThrowIfNull(asked);
        if (!File.Exists(OptionsPath)) throw new InvalidDataException($"{OptionsPath}: missing; the checkpoint cannot be matched to its settings.");
        JsonObject recorded;
        try { recorded = JsonNode.Parse(File.ReadAllText(OptionsPath))?.AsObject() ?? throw new InvalidDataException($"{OptionsPath}: not a JSON object."); }
        catch (Exception e) when (e is JsonException or InvalidOperationException) { throw new InvalidDataException($"{OptionsPath}: not valid JSON ({e.Message.Split('.')[0]})."); }

        var recordedInputs = recorded["inputs"] as JsonArray;
        var askedInputs = asked["inputs"] as JsonArray;
        var contentChanges = recordedInputs is null || askedInputs is null ? [] : ContentChanges(recordedInputs, askedInputs);
        var differences = new List<(string Key, JsonNode? Recorded, JsonNode? Asked)>();
        Compare("", recorded, asked, differences);
        if (differences.Count == 0 && contentChanges.Count == 0) return [];

        // Paths given for files are replaced by placeholders: what then still differs is more than a move.
        bool sameContent = recordedInputs is not null && askedInputs is not null && contentChanges.Count == 0 && recordedInputs.Count == askedInputs.Count;
        var recordedPaths = sameContent ? Givens(recordedInputs!) : [];
        var askedPaths = sameContent ? Givens(askedInputs!) : [];
        long? recordedSteps = Steps(recorded), askedSteps = Steps(asked);
        bool extended = recordedSteps is { } rs && askedSteps is { } asks && asks >= rs;
        var safe = new List<string>();
        var unsafeOnes = new List<string>(contentChanges);
        foreach (var (key, r, a) in differences)
        {
            var text = $"{Name(key)} was {Show(r)}, now {Show(a)}";
            bool moved = sameContent && JsonNode.DeepEquals(Normalize(r, recordedPaths), Normalize(a, askedPaths));
            bool longer = key switch { "steps" => extended && askedSteps > recordedSteps, "epochs" => extended, _ => false };
            if (moved) safe.Add(text + " (the same content)");
            else if (longer) safe.Add(text);
            else unsafeOnes.Add(text);
        }
        if (!force)
            throw new OptionException("resume", $"{{resume}}: the settings differ from the run recorded in {OptionsPath}: {string.Join("; ", unsafeOnes.Concat(safe))}. " +
                "Resume with the recorded settings, " + (unsafeOnes.Count == 0 ? "add {force} to continue with these, " : "") + "or start a new run (another {out}, or {overwrite}).");
        if (unsafeOnes.Count > 0)
            throw new OptionException("resume", $"{{resume}} {{force}}: the settings differ from the run recorded in {OptionsPath} in ways {{force}} cannot allow: {string.Join("; ", unsafeOnes)}. " +
                "{force} allows only more steps or epochs and a file moved with the same content" + (recordedInputs is null ? " (this run recorded no file contents, so no move can be checked)" : "") +
                "; resume with the recorded settings, or start a new run (another {out}, or {overwrite}).");
        return [.. safe.Select(OptionException.CommandLine)];
    }

    /// <summary>Files whose content differs between the recorded and the asked inputs, named by option and path.</summary>
    private static List<string> ContentChanges(JsonArray recorded, JsonArray asked)
    {
        var changes = new List<string>();
        foreach (var setting in recorded.Select(SettingOf).Distinct())
        {
            var r = recorded.Where(e => SettingOf(e) == setting).ToList();
            var a = asked.Where(e => SettingOf(e) == setting).ToList();
            // Entries pair up in order (each data file with each data file); a different count is a difference in the setting itself.
            for (int i = 0; i < Math.Min(r.Count, a.Count); i++)
            {
                var rf = Files(r[i]);
                var af = Files(a[i]);
                if (rf.Select(f => f.Sha256).SequenceEqual(af.Select(f => f.Sha256))) continue;
                var name = Name(setting);
                int inPlace = rf.Zip(af).ToList().FindIndex(p => p.First.Path == p.Second.Path && p.First.Sha256 != p.Second.Sha256);
                if (inPlace >= 0)
                    changes.Add($"{name}: {rf[inPlace].Path} changed since the run began (its SHA-256 was {Short(rf[inPlace].Sha256)}, now {Short(af[inPlace].Sha256)})");
                else if (rf.Count != af.Count)
                    changes.Add($"{name}: the run read {rf.Count} file(s) ({string.Join(", ", rf.Select(x => x.Path))}), now {af.Count} ({string.Join(", ", af.Select(x => x.Path))})");
                else
                {
                    var (was, now) = rf.Zip(af).First(p => p.First.Sha256 != p.Second.Sha256);
                    changes.Add($"{name}: {now.Path} holds other content than {was.Path}, which the run read (SHA-256 {Short(was.Sha256)}, now {Short(now.Sha256)})");
                }
            }
        }
        return changes;
    }

    private static string SettingOf(JsonNode? entry) => (string?)entry?["setting"] ?? "";

    private static List<(string Path, string Sha256)> Files(JsonNode? entry) =>
        entry?["files"] is JsonArray files ? [.. files.Select(f => ((string?)f?["path"] ?? "", (string?)f?["sha256"] ?? ""))] : [];

    private static string Short(string sha256) => sha256.Length > 12 ? sha256[..12] + "..." : sha256;

    /// <summary>The paths given for files, each with its placeholder, longest first (so no path is replaced inside a longer one).</summary>
    private static List<(string Given, string Placeholder)> Givens(JsonArray inputs) =>
        [.. inputs.Select((e, i) => ((string?)e?["given"], $"<file {i}>")).Where(p => !string.IsNullOrEmpty(p.Item1)).Select(p => (p.Item1!, p.Item2))
            .OrderByDescending(p => p.Item1.Length)];

    private static JsonNode? Normalize(JsonNode? node, List<(string Given, string Placeholder)> paths)
    {
        switch (node)
        {
            case JsonArray array: return new JsonArray([.. array.Select(n => Normalize(n, paths))]);
            case JsonValue value when value.TryGetValue<string>(out var text):
                foreach (var (given, placeholder) in paths) text = text.Replace(given, placeholder, StringComparison.Ordinal);
                return JsonValue.Create(text);
            default: return node?.DeepClone();
        }
    }

    private static long? Steps(JsonObject options) => options["steps"] is JsonValue v && v.TryGetValue<long>(out var n) ? n : null;

    private static string Name(string key) => OptionNames.TryGetValue(key, out var option) ? option : key;

    /// <summary>The command-line option behind each recorded setting.</summary>
    private static readonly Dictionary<string, string> OptionNames = new(StringComparer.Ordinal)
    {
        ["model"] = "{model}", ["generation_model"] = "{generation-model}", ["tokenizer"] = "{tokenizer}", ["template"] = "{template}",
        ["data"] = "{data}", ["examples"] = "the number of examples ({data})", ["steps"] = "{steps}", ["epochs"] = "{epochs}",
        ["batch_size"] = "{batch-size}", ["micro_batch"] = "{micro-batch}", ["max_length"] = "{max-length}", ["layout"] = "{pack}", ["base_dtype"] = "{base-dtype}",
        ["seed"] = "{seed}", ["lora"] = "{lora}", ["lora.rank"] = "{lora}", ["lora.alpha"] = "{lora-alpha}", ["lora.pattern"] = "{lora-pattern}",
        ["optimizer.lr"] = "{lr}", ["optimizer.weight_decay"] = "{weight-decay}", ["optimizer.warmup"] = "{warmup}", ["optimizer.clip_norm"] = "{clip-norm}",
        ["safety.risk"] = "{risk}", ["safety.beta_map"] = "{beta-map}", ["safety.weighting"] = "{weighting}", ["safety.aggregation"] = "{aggregate}",
        ["safety.penalty"] = "{penalty}", ["safety.penalty_strength"] = "{penalty-strength}",
    };

    private static void Compare(string prefix, JsonNode? recorded, JsonNode? asked, List<(string, JsonNode?, JsonNode?)> differences)
    {
        if (prefix is "provider" or "inputs") return;
        if (recorded is JsonObject r && asked is JsonObject a)
        {
            foreach (var key in r.Select(p => p.Key).Union(a.Select(p => p.Key)))
                Compare(prefix.Length == 0 ? key : prefix + "." + key, r[key], a[key], differences);
            return;
        }
        if (JsonNode.DeepEquals(recorded, asked)) return;
        differences.Add((prefix, recorded, asked));
    }

    private static string Show(JsonNode? node) => node is null ? "unset" : node.ToJsonString(Compact);

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
    public void WriteOptions(JsonObject options) => AtomicFile.WriteAllText(OptionsPath, options.ToJsonString(Indented));

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
