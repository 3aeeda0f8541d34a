using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using SafeTune.Onnx;
using SafeTune.Safety.Activations;

namespace SafeTune.Safety.Probes;

/// <summary>
/// A trained activation probe as one JSON file: the model it reads (path and SHA-256 of the file), the tokenizer, the
/// layers and pooling, the maximum prompt length, the decision threshold, the feature standardisation and the weights.
/// <code>
/// {"format": "safetune-probe/1", "model": {"path", "sha256"}, "tokenizer": "...", "layers": [..] | null,
///  "pooling": "MeanTokensThenLayers", "maxLength": 128, "head": "logistic", "threshold": 0.5,
///  "lambda": 0.001, "mean": [..], "std": [..], "weights": [..], "bias": 0.1}
/// </code>
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
    /// <summary>The hidden-state layers read; null for all.</summary>
    public IReadOnlyList<int>? Layers { get; init; }
    /// <summary>The pooling.</summary>
    public ActivationPooling Pooling { get; init; } = ActivationPooling.MeanTokensThenLayers;
    /// <summary>The prompt length limit used when extracting.</summary>
    public int MaxLength { get; init; } = 128;
    /// <summary>The harm probability at or above which a prompt is flagged.</summary>
    public double Threshold { get; init; } = 0.5;
    /// <summary>The head.</summary>
    public required LogisticRegression Head { get; init; }

    /// <summary>SHA-256 (lower-case hex) of a file.</summary>
    public static string HashFile(string path)
    {
        using var stream = File.OpenRead(path);
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
            ["layers"] = Layers is null ? null : new JsonArray([.. Layers.Select(l => (JsonNode)l)]),
            ["pooling"] = Pooling.ToString(),
            ["maxLength"] = MaxLength,
            ["head"] = "logistic",
            ["threshold"] = Threshold,
            ["lambda"] = Head.Lambda,
            ["mean"] = Numbers(Head.Standardizer.Mean),
            ["std"] = Numbers(Head.Standardizer.Std),
            ["weights"] = Numbers(Head.Weights),
            ["bias"] = Head.Bias,
        };
        AtomicFile.WriteAllText(path, json.ToJsonString(new JsonSerializerOptions { WriteIndented = false }));
    }

    private static JsonArray Numbers(IReadOnlyList<double> xs) => new([.. xs.Select(x => (JsonNode)x)]);

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
            var head = new LogisticRegression(new Standardizer(Array("mean"), Array("std")), Array("weights"), (double)root["bias"]!, (double)root["lambda"]!);
            return new ProbeFile
            {
                ModelPath = (string)root["model"]!["path"]!,
                ModelSha256 = (string)root["model"]!["sha256"]!,
                Tokenizer = (string)root["tokenizer"]!,
                Layers = root["layers"]?.AsArray().Select(n => (int)n!).ToArray(),
                Pooling = Enum.Parse<ActivationPooling>((string)root["pooling"]!),
                MaxLength = (int)root["maxLength"]!,
                Threshold = (double)root["threshold"]!,
                Head = head,
            };
        }
        catch (Exception e) when (e is JsonException or NullReferenceException or InvalidOperationException or FormatException or ArgumentException)
        {
            throw new InvalidDataException($"{path}: not a valid probe file ({e.Message.Split('.')[0]}).");
        }
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
