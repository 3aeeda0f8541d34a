using System.Globalization;
using System.Text.Json;
using SafeTune.Onnx;

namespace SafeTune.Models.Generation;

/// <summary>Which kind of model folder <see cref="DecoderFolder"/> read.</summary>
public enum DecoderFolderKind
{
    /// <summary>An ONNX Runtime GenAI folder: <c>genai_config.json</c> names the decoder file and its inputs and outputs.</summary>
    GenAi,
    /// <summary>A Hugging Face Optimum export: <c>decoder_model_merged.onnx</c>, <c>model.onnx</c>, <c>decoder_with_past_model.onnx</c> or <c>decoder_model.onnx</c>.</summary>
    Optimum,
}

/// <summary>
/// The names a decoder folder's graph uses for what SafeTune's generator feeds and reads; <c>%d</c> in the past and present
/// names stands for the layer index.
/// </summary>
public sealed record DecoderNames
{
    /// <summary>The token ids input.</summary>
    public string InputIds { get; init; } = "input_ids";
    /// <summary>The attention mask input.</summary>
    public string AttentionMask { get; init; } = "attention_mask";
    /// <summary>The position ids input (used only when the graph has it).</summary>
    public string PositionIds { get; init; } = "position_ids";
    /// <summary>Past keys.</summary>
    public string PastKey { get; init; } = "past_key_values.%d.key";
    /// <summary>Past values.</summary>
    public string PastValue { get; init; } = "past_key_values.%d.value";
    /// <summary>The logits output.</summary>
    public string Logits { get; init; } = "logits";
    /// <summary>Present keys.</summary>
    public string PresentKey { get; init; } = "present.%d.key";
    /// <summary>Present values.</summary>
    public string PresentValue { get; init; } = "present.%d.value";

    /// <summary>The names Hugging Face Optimum and SafeTune's own key/value-cache graphs use.</summary>
    public static DecoderNames Standard { get; } = new();

    internal static string Layer(string format, int layer) => format.Replace("%d", layer.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal);
}

/// <summary>A model folder as <see cref="DecoderFolder.Open"/> found it.</summary>
/// <param name="Directory">The folder.</param>
/// <param name="Kind">GenAI or Optimum.</param>
/// <param name="ModelPath">The decoder file inside it.</param>
/// <param name="TokenizerDirectory">The folder holding the tokenizer files (the folder itself, or its parent for an <c>onnx/</c> subfolder), or null when there are none.</param>
/// <param name="Names">The decoder's input and output names.</param>
/// <param name="ContextLength">The context length the folder's configuration declares, when it does.</param>
public sealed record DecoderFolderInfo(string Directory, DecoderFolderKind Kind, string ModelPath, string? TokenizerDirectory, DecoderNames Names,
    int? ContextLength);

/// <summary>
/// Reads decoder model folders written by other tools for inference: an ONNX Runtime GenAI folder (<c>genai_config.json</c>
/// names the decoder and its inputs and outputs; tokenizer files beside it) or a Hugging Face Optimum export
/// (<c>decoder_model_merged.onnx</c>, <c>model.onnx</c>, <c>decoder_with_past_model.onnx</c> or <c>decoder_model.onnx</c>,
/// with <c>config.json</c> and tokenizer files, in the folder or its <c>onnx/</c> subfolder). <see cref="Load(string)"/> gives
/// the graph SafeTune's generator, evaluator and probes run: inputs and outputs under the standard names
/// (<see cref="DecoderNames.Standard"/>), and a merged decoder's <c>use_cache_branch</c> input computed from the past length.
/// </summary>
public static class DecoderFolder
{
    /// <summary>Optimum's decoder files, in the order they are preferred (a key/value cache first).</summary>
    public static IReadOnlyList<string> OptimumFiles { get; } =
        ["decoder_model_merged.onnx", "model.onnx", "decoder_with_past_model.onnx", "decoder_model.onnx"];

    /// <summary>The merged decoder's boolean input that picks the with-past branch.</summary>
    public const string UseCacheBranch = "use_cache_branch";

    private static readonly string[] TokenizerFiles = ["tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt"];

    /// <summary>True when <paramref name="path"/> is a folder holding <c>genai_config.json</c> or one of <see cref="OptimumFiles"/>.</summary>
    public static bool IsDecoderFolder(string? path) =>
        path is not null && Directory.Exists(path)
        && (File.Exists(Path.Combine(path, GenAiFolder.ConfigFileName)) || FindOptimumFile(path) is not null);

    /// <summary>The decoder file a folder argument names (the argument itself when it is not a decoder folder).</summary>
    public static string ModelFile(string path) => IsDecoderFolder(path) ? Open(path).ModelPath : path;

    /// <summary>The tokenizer folder of a decoder folder argument, or null when the argument is not one or has no tokenizer.</summary>
    public static string? TokenizerOf(string? path) => IsDecoderFolder(path) ? Open(path!).TokenizerDirectory : null;

    /// <summary>Loads a decoder folder (<see cref="Load(string)"/>) or, for any other path, the ONNX file as it is.</summary>
    public static Model LoadModel(string path) => IsDecoderFolder(path) ? Load(path) : Model.Load(path);

    /// <summary>Finds the decoder, its names and its tokenizer in a folder.</summary>
    /// <exception cref="InvalidDataException">The folder holds no decoder, or its <c>genai_config.json</c> is not usable; the message names the file.</exception>
    public static DecoderFolderInfo Open(string directory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        var dir = Path.GetFullPath(directory);
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"{directory}: no such model folder.");
        var genai = Path.Combine(dir, GenAiFolder.ConfigFileName);
        if (File.Exists(genai)) return OpenGenAi(dir, genai);
        var file = FindOptimumFile(dir)
            ?? throw new InvalidDataException($"{dir}: not a model folder: no {GenAiFolder.ConfigFileName} and none of {string.Join(", ", OptimumFiles)} (also looked in onnx/).");
        var modelDir = Path.GetDirectoryName(file)!;
        var tokenizerDir = HasTokenizer(modelDir) ? modelDir : HasTokenizer(dir) ? dir : null;
        return new DecoderFolderInfo(dir, DecoderFolderKind.Optimum, file, tokenizerDir, DecoderNames.Standard,
            ReadInt(Path.Combine(dir, "config.json"), "max_position_embeddings", "n_positions"));
    }

    private static string? FindOptimumFile(string dir)
    {
        foreach (var folder in new[] { dir, Path.Combine(dir, "onnx") })
            foreach (var name in OptimumFiles)
                if (File.Exists(Path.Combine(folder, name))) return Path.Combine(folder, name);
        return null;
    }

    private static bool HasTokenizer(string dir) => TokenizerFiles.Any(f => File.Exists(Path.Combine(dir, f)));

    private static DecoderFolderInfo OpenGenAi(string dir, string configPath)
    {
        JsonElement root;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(configPath));
            root = doc.RootElement.Clone();
        }
        catch (JsonException e) { throw new InvalidDataException($"{configPath}: not valid JSON ({e.Message})"); }
        if (!root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object
            || !model.TryGetProperty("decoder", out var decoder) || decoder.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"{configPath}: has no model.decoder section.");
        var filename = String(decoder, "filename") ?? throw new InvalidDataException($"{configPath}: model.decoder.filename is missing.");
        var file = SafePaths.ResolveInside(dir, filename, $"{configPath}: model.decoder.filename", "the model's folder");
        if (!File.Exists(file)) throw new InvalidDataException($"{configPath}: model.decoder.filename '{filename}' does not exist.");
        var standard = DecoderNames.Standard;
        var inputs = decoder.TryGetProperty("inputs", out var i) && i.ValueKind == JsonValueKind.Object ? i : default;
        var outputs = decoder.TryGetProperty("outputs", out var o) && o.ValueKind == JsonValueKind.Object ? o : default;
        if (inputs.ValueKind == JsonValueKind.Object && String(inputs, "past_names") is not null && String(inputs, "past_key_names") is null)
            throw new InvalidDataException($"{configPath}: the decoder keeps keys and values in one past tensor per layer (past_names); SafeTune runs decoders with separate past keys and values.");
        string Name(JsonElement section, string key, string fallback) =>
            section.ValueKind == JsonValueKind.Object ? String(section, key) ?? fallback : fallback;
        var names = new DecoderNames
        {
            InputIds = Name(inputs, "input_ids", standard.InputIds),
            AttentionMask = Name(inputs, "attention_mask", standard.AttentionMask),
            PositionIds = Name(inputs, "position_ids", standard.PositionIds),
            PastKey = Name(inputs, "past_key_names", standard.PastKey),
            PastValue = Name(inputs, "past_value_names", standard.PastValue),
            Logits = Name(outputs, "logits", standard.Logits),
            PresentKey = Name(outputs, "present_key_names", standard.PresentKey),
            PresentValue = Name(outputs, "present_value_names", standard.PresentValue),
        };
        int? context = model.TryGetProperty("context_length", out var c) && c.TryGetInt32(out var n) && n > 0 ? n : null;
        return new DecoderFolderInfo(dir, DecoderFolderKind.GenAi, file, HasTokenizer(dir) ? dir : null, names, context);
    }

    private static string? String(JsonElement e, string key) =>
        e.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.String && v.GetString() is { Length: > 0 } s ? s : null;

    private static int? ReadInt(string path, params string[] keys)
    {
        if (!File.Exists(path)) return null;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            if (doc.RootElement.ValueKind != JsonValueKind.Object) return null;
            foreach (var key in keys)
                if (doc.RootElement.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out var n) && n > 0) return n;
        }
        catch (JsonException) { }
        return null;
    }

    /// <summary>Loads the decoder of a folder in the form SafeTune runs (see <see cref="Canonicalize"/>).</summary>
    /// <exception cref="InvalidDataException">The folder or its decoder is not usable; the message names the file.</exception>
    public static Model Load(string directory) => Load(Open(directory));

    /// <summary>Loads the decoder <paramref name="folder"/> names, in the form SafeTune runs.</summary>
    public static Model Load(DecoderFolderInfo folder)
    {
        ArgumentNullException.ThrowIfNull(folder);
        var model = Model.Load(folder.ModelPath);
        Canonicalize(model, folder.Names, folder.ModelPath);
        if (folder.ContextLength is int context && !model.MetadataProps.Any(p => p.Key == Generation.ContextLength.MetadataKey))
            model.MetadataProps.Add(new(Generation.ContextLength.MetadataKey, context.ToString(CultureInfo.InvariantCulture)));
        return model;
    }

    /// <summary>
    /// Renames a decoder's inputs and outputs from <paramref name="names"/> to <see cref="DecoderNames.Standard"/>, and replaces
    /// a merged decoder's <c>use_cache_branch</c> input by <c>past length &gt; 0</c> computed in the graph, so that the graph
    /// takes only what SafeTune's generator feeds. <paramref name="where"/> names the file in errors.
    /// </summary>
    /// <exception cref="InvalidDataException">A required input or output is missing, the cache is not float32, or the graph takes an input SafeTune does not feed.</exception>
    public static void Canonicalize(Model model, DecoderNames names, string where)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(names);
        var g = model.Graph;
        var standard = DecoderNames.Standard;
        Value? Input(string name) => g.Inputs.FirstOrDefault(v => v.Name == name && !v.IsInitializer);
        Value? Output(string name) => g.Outputs.FirstOrDefault(v => v.Name == name);
        var renames = new List<(Value Value, string Name)>();
        void Map(Value? value, string name)
        {
            if (value is not null && value.Name != name) renames.Add((value, name));
        }
        Map(Input(names.InputIds) ?? throw new InvalidDataException($"{where}: the decoder has no '{names.InputIds}' input."), standard.InputIds);
        Map(Output(names.Logits) ?? throw new InvalidDataException($"{where}: the decoder has no '{names.Logits}' output."), standard.Logits);
        Map(Input(names.AttentionMask), standard.AttentionMask);
        Map(Input(names.PositionIds), standard.PositionIds);
        int layers = 0;
        while (Input(DecoderNames.Layer(names.PastKey, layers)) is not null) layers++;
        for (int i = 0; i < layers; i++)
        {
            var pastKey = Input(DecoderNames.Layer(names.PastKey, i))!;
            if (pastKey.ElementType != ElementType.Float)
                throw new InvalidDataException($"{where}: the key/value cache is {pastKey.ElementType.OnnxName()}; SafeTune runs float32 decoders (export or build the model in float32).");
            Map(pastKey, DecoderNames.Layer(standard.PastKey, i));
            Map(Input(DecoderNames.Layer(names.PastValue, i)) ?? throw new InvalidDataException($"{where}: the decoder has no '{DecoderNames.Layer(names.PastValue, i)}' input."),
                DecoderNames.Layer(standard.PastValue, i));
            Map(Output(DecoderNames.Layer(names.PresentKey, i)) ?? throw new InvalidDataException($"{where}: the decoder has no '{DecoderNames.Layer(names.PresentKey, i)}' output."),
                DecoderNames.Layer(standard.PresentKey, i));
            Map(Output(DecoderNames.Layer(names.PresentValue, i)) ?? throw new InvalidDataException($"{where}: the decoder has no '{DecoderNames.Layer(names.PresentValue, i)}' output."),
                DecoderNames.Layer(standard.PresentValue, i));
        }
        // Two passes, so that names may trade places.
        foreach (var (value, _) in renames) g.RenameValueUnique(value, value.Name + ".renamed");
        foreach (var (value, name) in renames)
        {
            if (g.FindValue(name) is { } occupant && !ReferenceEquals(occupant, value)) g.RenameValueUnique(occupant, name + ".inner");
            try { g.RenameValue(value, name); }
            catch (InvalidOperationException) { throw new InvalidDataException($"{where}: the name '{name}' is used inside the graph; SafeTune cannot give it to the decoder's input or output."); }
        }

        if (Input(UseCacheBranch) is { } branch)
        {
            if (layers == 0) throw new InvalidDataException($"{where}: the decoder takes '{UseCacheBranch}' but has no past key/value inputs.");
            // use_cache_branch = past_length > 0, read off the first past key's shape [batch, heads, past, head_dim].
            var pastKey0 = Input(DecoderNames.Layer(standard.PastKey, 0));
            var dims = g.AddNode("Shape", [pastKey0], ["use_cache_branch.shape"]).Outputs[0];
            var start = g.AddInitializerUnique("use_cache_branch.start", TensorData.Vector<long>("start", 2));
            var end = g.AddInitializerUnique("use_cache_branch.end", TensorData.Vector<long>("end", 3));
            var shape = g.AddNode("Slice", [dims, start, end], ["use_cache_branch.past_length"]).Outputs[0];
            var zero = g.AddInitializerUnique("use_cache_branch.zero", TensorData.Vector<long>("zero", 0));
            var computed = g.AddNode("Greater", [shape, zero], ["use_cache_branch.computed"]).Outputs[0];
            computed.ElementType = ElementType.Bool;
            computed.Shape = new Shape([Dim.Of(1)]);
            g.ReplaceAllUses(branch, computed);
            g.RemoveInput(branch);
            g.SortTopologically();
        }

        var fed = new HashSet<string>(StringComparer.Ordinal) { standard.InputIds, standard.AttentionMask, standard.PositionIds };
        for (int i = 0; i < layers; i++)
        {
            fed.Add(DecoderNames.Layer(standard.PastKey, i));
            fed.Add(DecoderNames.Layer(standard.PastValue, i));
        }
        if (g.Inputs.FirstOrDefault(v => !v.IsInitializer && !fed.Contains(v.Name)) is { } extra)
            throw new InvalidDataException($"{where}: the decoder takes an input '{extra.Name}' that SafeTune does not feed (it feeds input_ids, attention_mask, position_ids and the past keys and values).");
    }
}
