using System.Security.Cryptography;
using System.Text.Json.Nodes;
using SafeTune.Models.Tokenization;
using SafeTune.Onnx;
using SafeTune.Training.Data;
using SafeTune.Training.Risk;

namespace SafeTune.Training.FineTuning;

/// <summary>
/// The content of every file a run reads, recorded in <c>options.json</c> under <c>inputs</c> so that a resume can tell a
/// file changed in place (same path, other bytes) from an identical file at another path. One entry per path the user
/// gave, in a fixed order:
/// <code>{"setting": "data", "given": "train.jsonl", "files": [{"path": "/abs/train.jsonl", "sha256": "..."}]}</code>
/// <c>setting</c> is the recorded setting the path belongs to (<c>model</c>, <c>generation_model</c>, <c>tokenizer</c>,
/// <c>data</c>, <c>safety.risk</c>), <c>given</c> the path as it stands in that setting.
/// </summary>
/// <remarks>
/// Every byte is hashed, external data of the model included: a fingerprint of size and modification time would miss a
/// file rewritten with the same size (a patched weight) or a copy that keeps the time, and a sampled hash would miss a
/// change between samples. SHA-256 streams the file in 1 MiB reads, so memory stays flat. OpenSSL's SHA-256 (which .NET
/// uses on Linux) ran at 0.6 GB/s on a busy 2-core machine: a 2 GB model (0.5B parameters in fp32) costs a few seconds
/// at the start of a run, against minutes of training.
/// </remarks>
internal static class InputFiles
{
    /// <summary>The entries for a train job (see the class remarks).</summary>
    public static JsonArray Of(TrainJobOptions o)
    {
        ArgumentNullException.ThrowIfNull(o);
        var entries = new JsonArray();
        entries.Add(Entry("model", Path.GetFullPath(o.Model), ModelFiles.Of(o.Model)));
        if (o.GenerationModel is { } g) entries.Add(Entry("generation_model", Path.GetFullPath(g), ModelFiles.Of(g)));
        var tokenizer = TokenizerLoader.Files(o.Tokenizer);
        if (tokenizer.Count > 0) entries.Add(Entry("tokenizer", o.Tokenizer, tokenizer));
        foreach (var spec in o.Data)
        {
            var part = DatasetPart.Parse(spec);
            if (!File.Exists(part.Spec.Path)) continue;
            // A data set named by its public name resolves to a cached file: the name, not the path, stands in the setting.
            entries.Add(Entry("data", spec.StartsWith(part.Spec.Path, StringComparison.Ordinal) ? part.Spec.Path : null, [Path.GetFullPath(part.Spec.Path)]));
        }
        if (o.Safety.Risk is RiskSpec.Probe or RiskSpec.Critic)
        {
            // probe:PATH is one file; critic:SPEC names a local judge file or folder before any '?' options (a URL names none).
            var local = o.Safety.Risk is RiskSpec.Probe p ? p.Path : ((RiskSpec.Critic)o.Safety.Risk).Judge.Split('?', 2)[0];
            if (File.Exists(local)) entries.Add(Entry("safety.risk", local, [Path.GetFullPath(local)]));
            else if (Directory.Exists(local))
                entries.Add(Entry("safety.risk", local, [.. Directory.EnumerateFiles(local).Select(Path.GetFullPath).Where(f => SafePaths.KindOf(f) == FileKind.Regular).Order(StringComparer.Ordinal)]));
        }
        return entries;
    }

    private static JsonObject Entry(string setting, string? given, IEnumerable<string> files) => new()
    {
        ["setting"] = setting,
        ["given"] = given,
        ["files"] = new JsonArray([.. files.Select(f => (JsonNode)new JsonObject { ["path"] = f, ["sha256"] = Sha256(f) })]),
    };

    /// <summary>SHA-256 (lower-case hex) of a file, read in 1 MiB pieces.</summary>
    /// <exception cref="InvalidDataException">The file cannot be read; the message names it.</exception>
    public static string Sha256(string path)
    {
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.SequentialScan);
            return Convert.ToHexStringLower(SHA256.HashData(stream));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidDataException($"{path}: cannot be read to record its SHA-256 ({e.Message.TrimEnd('.')}).", e);
        }
    }
}
