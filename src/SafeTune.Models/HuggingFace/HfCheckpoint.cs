using System.Text.Json;
using SafeTune.Onnx;

namespace SafeTune.Models.HuggingFace;

/// <summary>
/// A checkpoint in Hugging Face layout: <c>config.json</c> and weights in <c>*.safetensors</c> (one file, or shards listed
/// in <c>model.safetensors.index.json</c>), with the Hub's tensor names. Float16 and bfloat16 weights are converted to
/// float32. Loading reads only the headers: each weight is read (and converted) when it is needed, so exporting a model
/// streams it tensor by tensor instead of holding the checkpoint in memory.
/// </summary>
public sealed class HfCheckpoint
{
    private HfCheckpoint(string directory, JsonElement config, Dictionary<string, TensorData> tensors)
    {
        Directory = directory;
        Config = config;
        Tensors = tensors;
    }

    /// <summary>The checkpoint folder.</summary>
    public string Directory { get; }

    /// <summary>The parsed config.json.</summary>
    public JsonElement Config { get; }

    /// <summary>The weights by Hub name, as float32 (integer tensors kept as they are).</summary>
    public IReadOnlyDictionary<string, TensorData> Tensors { get; }

    /// <summary>config.json's model_type.</summary>
    public string ModelType => Config.TryGetProperty("model_type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : "";

    /// <summary>Loads config.json and every weight of the checkpoint in <paramref name="directory"/>.</summary>
    public static HfCheckpoint Load(string directory)
    {
        if (!System.IO.Directory.Exists(directory)) throw new DirectoryNotFoundException($"{directory}: folder not found.");
        var configPath = Path.Combine(directory, "config.json");
        if (!File.Exists(configPath)) throw new FileNotFoundException($"{configPath}: file not found (a Hugging Face checkpoint folder holds config.json).", configPath);
        SafePaths.RequireRegularInput(configPath);
        JsonElement config;
        try { config = JsonDocument.Parse(File.ReadAllBytes(configPath)).RootElement.Clone(); }
        catch (JsonException e) { throw new InvalidDataException($"{configPath}: not valid JSON ({e.Message.Split('.')[0]})."); }
        if (config.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{configPath}: must be a JSON object of settings, not {config.ValueKind.ToString().ToLowerInvariant()}.");

        var files = WeightFiles(directory);
        var tensors = new Dictionary<string, TensorData>(StringComparer.Ordinal);
        foreach (var file in files)
            foreach (var t in SafeTensors.ReadDeferred(file, convertToFloat32: true).Tensors)
            {
                if (!tensors.TryAdd(t.Name, t))
                    throw new InvalidDataException($"{file}: tensor '{t.Name}' appears in more than one weight file.");
            }
        return new HfCheckpoint(directory, config, tensors);
    }

    private static List<string> WeightFiles(string directory)
    {
        var index = Path.Combine(directory, "model.safetensors.index.json");
        if (File.Exists(index))
        {
            try
            {
                using var doc = JsonDocument.Parse(File.ReadAllBytes(index));
                var map = doc.RootElement.GetProperty("weight_map");
                var shards = map.EnumerateObject().Select(p => p.Value.GetString()!).Distinct().ToList();
                return [.. shards.Select(s => SafePaths.ResolveInside(directory, s, $"{index}: shard", "the checkpoint folder"))];
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
            {
                throw new InvalidDataException($"{index}: not a valid safetensors index ({e.Message.Split('.')[0]}).");
            }
        }
        var single = Path.Combine(directory, "model.safetensors");
        if (File.Exists(single)) return [Inside(directory, "model.safetensors")];
        var any = System.IO.Directory.GetFiles(directory, "*.safetensors").Order(StringComparer.Ordinal).ToList();
        return any.Count > 0
            ? [.. any.Select(f => Inside(directory, Path.GetFileName(f)))]
            : throw new FileNotFoundException($"{directory}: no *.safetensors weights found.");
    }

    /// <summary>A weight file of the folder, refused when it is a link that leads outside the folder.</summary>
    private static string Inside(string directory, string name) =>
        SafePaths.ResolveInside(directory, name, $"{Path.Combine(directory, name)}: weight file", "the checkpoint folder");

    /// <summary>
    /// A size from config.json (a whole number from 1 to 2^31 - 1), or <paramref name="fallback"/>; throws naming the field
    /// when it is required and absent, or not such a number.
    /// </summary>
    public int Int(string name, int? fallback = null) =>
        IntOrNull(name) ?? fallback ?? throw new InvalidDataException($"{Path.Combine(Directory, "config.json")}: '{name}' is missing.");

    /// <summary>A size from config.json (a whole number from 1 to 2^31 - 1), or null when the field is absent or null.</summary>
    public int? IntOrNull(string name)
    {
        if (!Config.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        return v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out var n) && n >= 1 ? n
            : throw new InvalidDataException($"{Path.Combine(Directory, "config.json")}: '{name}' must be a whole number from 1 to {int.MaxValue}, not {v.GetRawText()}.");
    }

    /// <summary>A number from config.json, or <paramref name="fallback"/>.</summary>
    public double Number(string name, double fallback) =>
        Config.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : fallback;

    /// <summary>A boolean from config.json, or <paramref name="fallback"/>.</summary>
    public bool Bool(string name, bool fallback) =>
        Config.TryGetProperty(name, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : fallback;

    /// <summary>A string from config.json, or <paramref name="fallback"/>.</summary>
    public string String(string name, string fallback) =>
        Config.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()! : fallback;
}
