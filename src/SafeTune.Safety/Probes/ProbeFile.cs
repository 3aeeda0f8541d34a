using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using SafeTune.Models.Chat;
using SafeTune.Onnx;
using SafeTune.Safety.Activations;

namespace SafeTune.Safety.Probes;

/// <summary>How a probe's threshold was calibrated on a held-out split of its training prompts.</summary>
/// <param name="TargetRecall">The recall asked for.</param>
/// <param name="Recall">The recall reached on the held-out split at the threshold.</param>
/// <param name="FalsePositiveRate">The share of held-out harmless prompts flagged at the threshold.</param>
/// <param name="Harmful">Held-out harmful prompts.</param>
/// <param name="Harmless">Held-out harmless prompts.</param>
public sealed record ProbeCalibration(double TargetRecall, double Recall, double FalsePositiveRate, int Harmful, int Harmless);

/// <summary>
/// A trained activation probe as one JSON file: the model it reads (path and SHA-256 of the file), the tokenizer and
/// chat template, the layers and pooling, the maximum prompt length, the decision threshold (and how it was calibrated),
/// the feature standardisation and the head's weights.
/// <code>
/// {"format": "safetune-probe/1", "model": {"path", "sha256"}, "tokenizer": "...", "chatTemplate": null | "chatml" | FILE,
///  "promptFormat": "&lt;|im_start|&gt;user\n{prompt}&lt;|im_end|&gt;\n&lt;|im_start|&gt;assistant\n",
///  "layers": [..] | null, "layerCount": 6, "pooling": "MeanTokensThenLayers", "attentionQuery": null | [..], "maxLength": 128, "threshold": 0.5,
///  "calibration": null | {"targetRecall", "recall", "fpr", "harmful", "harmless"}, "mean": [..], "std": [..],
///  "head": "logistic", "lambda": 0.001, "weights": [..], "bias": 0.1}
/// </code>
/// An MLP head replaces the last four fields with <c>"head": "mlp", "hidden": 512, "w1": {"shape": [hidden, d],
/// "float32le": BASE64}, "b1": [..], "w2": [..] (2 x hidden, row-major), "b2": [..]</c>. Files without
/// <c>head</c>, <c>chatTemplate</c>, <c>promptFormat</c>, <c>layerCount</c> or <c>calibration</c> (the first logistic probes) still load.
/// </summary>
public sealed record ProbeFile
{
    /// <summary>The format tag.</summary>
    public const string Format = "safetune-probe/1";

    /// <summary>The model file the probe reads.</summary>
    public required string ModelPath { get; init; }
    /// <summary>SHA-256 (hex) of the model file's bytes.</summary>
    public required string ModelSha256 { get; init; }
    /// <summary>The tokenizer spec (a file, folder or tiktoken name).</summary>
    public required string Tokenizer { get; init; }
    /// <summary>
    /// The chat template prompts were rendered with (one user message up to the assistant header): a built-in name, the
    /// file a model's own template was read from, or null for raw text.
    /// </summary>
    public string? ChatTemplate { get; init; }
    /// <summary>
    /// What that template makes of one user message (<see cref="TemplateChoice.PromptFormat"/>); null in files that
    /// predate it, where <see cref="PromptFormatOrDefault"/> derives it from the built-in template's name.
    /// </summary>
    public string? PromptFormat { get; init; }
    /// <summary>The hidden-state layers read; null for all.</summary>
    public IReadOnlyList<int>? Layers { get; init; }
    /// <summary>The number of transformer blocks the model has (checked when the probe is appended to a graph); null when not recorded.</summary>
    public int? LayerCount { get; init; }
    /// <summary>How the hidden states were reduced to one feature vector (over prompt tokens, then layers, by default).</summary>
    public ActivationPooling Pooling { get; init; } = ActivationPooling.MeanTokensThenLayers;
    /// <summary>
    /// With <see cref="ActivationPooling.AttentionWeighted"/> pooling: the query that weighs the prompt's tokens (one value
    /// per feature, in the activations' raw units); null otherwise.
    /// </summary>
    public IReadOnlyList<float>? AttentionQuery { get; init; }
    /// <summary>The prompt length limit used when extracting.</summary>
    public int MaxLength { get; init; } = 128;
    /// <summary>The harm probability at or above which a prompt is flagged.</summary>
    public double Threshold { get; init; } = 0.5;
    /// <summary>How <see cref="Threshold"/> was calibrated; null when it is the default 0.5.</summary>
    public ProbeCalibration? Calibration { get; init; }
    /// <summary>The head (<see cref="LogisticRegression"/> or <see cref="MlpHead"/>).</summary>
    public required ProbeHead Head { get; init; }

    /// <summary>SHA-256 (lower-case hex) of a file.</summary>
    public static string HashFile(string path)
    {
        using var stream = File.OpenRead(Models.Generation.DecoderFolder.ModelFile(path));
        return Convert.ToHexString(SHA256.HashData(stream)).ToLowerInvariant();
    }

    /// <summary>Writes the probe atomically.</summary>
    public void Save(string path)
    {
        var json = new JsonObject
        {
            ["format"] = Format,
            ["model"] = new JsonObject { ["path"] = ModelPath, ["sha256"] = ModelSha256 },
            ["tokenizer"] = Tokenizer,
            ["chatTemplate"] = ChatTemplate,
            ["promptFormat"] = PromptFormat,
            ["layers"] = Layers is null ? null : new JsonArray([.. Layers.Select(l => (JsonNode)l)]),
            ["layerCount"] = LayerCount,
            ["pooling"] = Pooling.ToString(),
            ["attentionQuery"] = AttentionQuery is null ? null : Floats([.. AttentionQuery]),
            ["maxLength"] = MaxLength,
            ["threshold"] = Threshold,
            ["calibration"] = Calibration is not { } c ? null : new JsonObject
            {
                ["targetRecall"] = c.TargetRecall, ["recall"] = c.Recall, ["fpr"] = c.FalsePositiveRate,
                ["harmful"] = c.Harmful, ["harmless"] = c.Harmless,
            },
            ["mean"] = Numbers(Head.Standardizer.Mean),
            ["std"] = Numbers(Head.Standardizer.Std),
        };
        switch (Head)
        {
            case LogisticRegression lr:
                json["head"] = "logistic";
                json["lambda"] = lr.Lambda;
                json["weights"] = Numbers(lr.Weights);
                json["bias"] = lr.Bias;
                break;
            case MlpHead mlp:
                json["head"] = "mlp";
                json["hidden"] = mlp.HiddenSize;
                json["w1"] = new JsonObject
                {
                    ["shape"] = new JsonArray(mlp.HiddenSize, mlp.Dimension),
                    ["float32le"] = Convert.ToBase64String(LittleEndian(mlp.W1)),
                };
                json["b1"] = Floats(mlp.B1);
                json["w2"] = Floats(mlp.W2);
                json["b2"] = Floats(mlp.B2);
                break;
            default:
                throw new InvalidOperationException($"cannot save a head of type {Head.GetType().Name}.");
        }
        AtomicFile.WriteAllText(path, json.ToJsonString(new JsonSerializerOptions { WriteIndented = false }));
    }

    private static JsonArray Numbers(IReadOnlyList<double> xs) => new([.. xs.Select(x => (JsonNode)x)]);

    private static JsonArray Floats(ReadOnlySpan<float> xs)
    {
        var a = new JsonArray();
        foreach (var x in xs) a.Add((double)x);
        return a;
    }

    private static byte[] LittleEndian(ReadOnlySpan<float> xs)
    {
        var bytes = new byte[xs.Length * 4];
        for (int i = 0; i < xs.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), xs[i]);
        return bytes;
    }

    /// <summary>Reads a probe file; errors name the file and the field.</summary>
    public static ProbeFile Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: file not found.", path);
        try
        {
            var root = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
            if ((string?)root["format"] != Format) throw new InvalidDataException($"{path}: not a {Format} file.");
            double[] Array(string field) => root[field]?.AsArray().Select(n => (double)n!).ToArray()
                ?? throw new InvalidDataException($"{path}: '{field}' is missing.");
            float[] FloatArray(string field) => [.. Array(field).Select(v => (float)v)];
            var standardizer = new Standardizer(Array("mean"), Array("std"));
            var kind = (string?)root["head"] ?? "logistic";
            ProbeHead head = kind switch
            {
                "logistic" => new LogisticRegression(standardizer, Array("weights"), (double)root["bias"]!, (double)root["lambda"]!),
                "mlp" => new MlpHead(standardizer, ReadW1(path, root["w1"], (int)root["hidden"]!, standardizer.Dimension),
                    FloatArray("b1"), FloatArray("w2"), FloatArray("b2")),
                _ => throw new InvalidDataException($"{path}: unknown head '{kind}' (expected logistic or mlp)."),
            };
            var pooling = Enum.Parse<ActivationPooling>((string)root["pooling"]!);
            var query = root["attentionQuery"]?.AsArray().Select(n => (float)n!).ToArray();
            if (pooling == ActivationPooling.AttentionWeighted && query is null)
                throw new InvalidDataException($"{path}: 'attentionQuery' is missing (the probe pools with attention weights).");
            if (query is not null && query.Length != head.Dimension)
                throw new InvalidDataException($"{path}: 'attentionQuery' has {query.Length} values, not the head's {head.Dimension} features.");
            if (query is not null && pooling != ActivationPooling.AttentionWeighted)
                throw new InvalidDataException($"{path}: 'attentionQuery' is given but the pooling is {pooling}.");
            var calibration = root["calibration"] is JsonObject c
                ? new ProbeCalibration((double)c["targetRecall"]!, (double)c["recall"]!, (double)c["fpr"]!, (int)c["harmful"]!, (int)c["harmless"]!)
                : null;
            return new ProbeFile
            {
                ModelPath = (string)root["model"]!["path"]!,
                ModelSha256 = (string)root["model"]!["sha256"]!,
                Tokenizer = (string)root["tokenizer"]!,
                ChatTemplate = (string?)root["chatTemplate"],
                PromptFormat = (string?)root["promptFormat"],
                Layers = root["layers"]?.AsArray().Select(n => (int)n!).ToArray(),
                LayerCount = (int?)root["layerCount"],
                Pooling = pooling,
                AttentionQuery = query,
                MaxLength = (int)root["maxLength"]!,
                Threshold = (double)root["threshold"]!,
                Calibration = calibration,
                Head = head,
            };
        }
        catch (Exception e) when (e is JsonException or NullReferenceException or InvalidOperationException or FormatException or ArgumentException or UserInputException)
        {
            throw new InvalidDataException($"{path}: not a valid probe file ({e.Message.Split('.')[0]}).");
        }
    }

    private static float[] ReadW1(string path, JsonNode? node, int hidden, int d)
    {
        if (node is not JsonObject o) throw new InvalidDataException($"{path}: 'w1' is missing.");
        var shape = o["shape"]!.AsArray().Select(n => (int)n!).ToArray();
        if (shape.Length != 2 || shape[0] != hidden || shape[1] != d)
            throw new InvalidDataException($"{path}: 'w1' has shape [{string.Join(", ", shape)}], not [{hidden}, {d}].");
        var bytes = Convert.FromBase64String((string)o["float32le"]!);
        if (bytes.Length != (long)hidden * d * 4)
            throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture, $"{path}: 'w1' holds {bytes.Length} bytes, not {hidden} x {d} float32 values."));
        var w = new float[hidden * d];
        for (int i = 0; i < w.Length; i++) w[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(i * 4));
        return w;
    }

    /// <summary>The prompt format the probe was trained on: the recorded one, else the one its built-in template (or raw text) gives.</summary>
    public string PromptFormatOrDefault => PromptFormat ?? TemplateChoice.PromptFormat(
        ChatTemplate is null ? null : ChatTemplates.Names.Contains(ChatTemplate) ? ChatTemplates.ByName(ChatTemplate) : null);

    /// <summary>
    /// The chat template to render more prompts with, as the probe was trained: a built-in one by name, or the model's
    /// own template beside <paramref name="tokenizer"/> (default: the recorded tokenizer), which must still give the
    /// recorded prompt format. Null for raw text.
    /// </summary>
    /// <exception cref="InvalidDataException">The tokenizer's folder no longer gives the template the probe was trained with.</exception>
    public ChatTemplate? Template(string? tokenizer = null)
    {
        if (ChatTemplate is null) return null;
        if (ChatTemplates.Names.Contains(ChatTemplate)) return ChatTemplates.ByName(ChatTemplate);
        var spec = tokenizer ?? Tokenizer;
        var own = TemplateChoice.FolderOf(spec) is { } folder ? ChatTemplates.LoadModelTemplate(folder) : null;
        if (own is null || TemplateChoice.PromptFormat(own) != PromptFormatOrDefault)
            throw new InvalidDataException($"the probe was trained on prompts rendered with the chat template {ChatTemplate}, which the tokenizer {spec} does not give" +
                (own is null ? " (it has no chat template)." : $" (its template {own.Name} renders prompts differently)."));
        return own;
    }

    /// <summary>
    /// Checks that <paramref name="modelPath"/> is the model this probe was trained on (same SHA-256), naming both files
    /// when it is not.
    /// </summary>
    public void CheckModel(string modelPath)
    {
        var hash = HashFile(modelPath);
        if (hash != ModelSha256)
            throw new InvalidDataException($"{modelPath}: this model's SHA-256 {hash[..12]}... differs from the model the probe was trained on ({ModelPath}, {ModelSha256[..12]}...).");
    }
}
