using System.Text.Json;
using System.Text.Json.Nodes;
using SafeTune.Models.Chat;
using SafeTune.Models.Tokenization;
using SafeTune.Onnx;

namespace SafeTune.Models.Generation;

/// <summary>Options of <see cref="GenAiFolder.Write"/>; every field left null is read from the model or the tokenizer.</summary>
public sealed record GenAiFolderOptions
{
    /// <summary>
    /// GenAI's <c>model.type</c>. Default: the model's <c>hf_model_type</c> metadata (written by the Hugging Face
    /// exporter) when GenAI knows it as a decoder of this layout, else <c>llama</c>.
    /// </summary>
    public string? ModelType { get; init; }

    /// <summary>
    /// The context length (and the default <c>max_length</c>). Default: <see cref="Generation.ContextLength.Of"/>, else
    /// <see cref="Generation.ContextLength.Default"/>, as SafeTune's own generation uses.
    /// </summary>
    public int? ContextLength { get; init; }

    /// <summary>
    /// The chat template written into <c>tokenizer_config.json</c> when the tokenizer's own has none (a built-in
    /// template's <see cref="BuiltInChatTemplate.Jinja"/>). A model's own template always wins.
    /// </summary>
    public ChatTemplate? Template { get; init; }
}

/// <summary>What <see cref="GenAiFolder.Write"/> wrote.</summary>
/// <param name="Directory">The folder.</param>
/// <param name="ModelType">GenAI's <c>model.type</c>.</param>
/// <param name="Layers">Decoder layers (pairs of past/present key and value).</param>
/// <param name="ContextLength">The context length.</param>
/// <param name="EosTokenIds">The end-of-sequence ids, as SafeTune's generator stops on them.</param>
/// <param name="HasChatTemplate">True when <c>tokenizer_config.json</c> carries a <c>chat_template</c>.</param>
public sealed record GenAiFolderResult(string Directory, string ModelType, int Layers, int ContextLength, IReadOnlyList<int> EosTokenIds,
    bool HasChatTemplate);

/// <summary>
/// Writes a model folder that ONNX Runtime GenAI (<c>Microsoft.ML.OnnxRuntimeGenAI</c>, also its DirectML and CUDA
/// builds) loads as it is: <c>genai_config.json</c>, the key/value-cache decoder as <c>model.onnx</c> (see
/// <see cref="DecoderGraphOptions.KvCache"/>: <c>input_ids</c>, <c>attention_mask</c>, <c>past_key_values.{i}.key</c> /
/// <c>.value</c> in; <c>logits</c>, <c>present.{i}.key</c> / <c>.value</c> out), <c>tokenizer.json</c> and
/// <c>tokenizer_config.json</c> with the chat template. The decoder computes positions from the attention mask, so the
/// past and present caches are separate buffers (<c>past_present_share_buffer</c> false).
/// </summary>
public static class GenAiFolder
{
    /// <summary>The configuration file GenAI reads.</summary>
    public const string ConfigFileName = "genai_config.json";

    /// <summary>The decoder's file name in the folder.</summary>
    public const string ModelFileName = "model.onnx";

    /// <summary>
    /// Model types GenAI runs as a plain decoder with this graph's inputs and outputs. Not <c>gpt2</c>: GenAI 0.20's
    /// <c>gpt2</c> type asks for an input this graph does not have, so GPT-2 folders are written as <c>llama</c>, which
    /// feeds exactly the inputs <c>genai_config.json</c> names (the test suite runs a GPT-2 folder so).
    /// </summary>
    private static readonly HashSet<string> DecoderTypes = new(StringComparer.Ordinal) { "llama", "mistral", "qwen2" };

    /// <summary>
    /// Writes the folder <paramref name="directory"/> from a key/value-cache decoder and its tokenizer. The folder is built
    /// beside the target and renamed into place; an existing target is replaced only when it is empty or an earlier GenAI
    /// folder (it holds <c>genai_config.json</c>).
    /// </summary>
    /// <param name="model">The key/value-cache decoder.</param>
    /// <param name="tokenizerPath">A <c>tokenizer.json</c>, or a folder holding one; <c>tokenizer_config.json</c> and
    /// <c>generation_config.json</c> beside it are read too.</param>
    /// <param name="directory">The folder to write.</param>
    /// <param name="options">Overrides.</param>
    /// <exception cref="InvalidDataException">The model is not a key/value-cache decoder, the tokenizer is not a
    /// <c>tokenizer.json</c>, the target is in the way, or a value cannot be found; the message names the file at fault.</exception>
    public static GenAiFolderResult Write(Model model, string tokenizerPath, string directory, GenAiFolderOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrWhiteSpace(tokenizerPath);
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        options ??= new GenAiFolderOptions();
        var shape = DecoderShape.Of(model);
        var tokenizerJson = TokenizerJson(tokenizerPath);
        var tokenizer = TokenizerLoader.Load(tokenizerJson);
        int context = options.ContextLength ?? ContextLength.Of(model, tokenizerJson) ?? ContextLength.Default;
        if (context <= 0) throw new UserInputException("the context length must be positive.");
        var eos = tokenizer.StopIds.Count > 0 ? tokenizer.StopIds.ToArray()
            : throw new InvalidDataException($"{tokenizerJson}: the tokenizer names no end-of-sequence token (eos_token in tokenizer_config.json or generation_config.json).");
        string type = options.ModelType ?? ModelTypeOf(model);

        var target = Path.GetFullPath(directory);
        CheckTarget(target);
        var parent = Path.GetDirectoryName(target)!;
        Directory.CreateDirectory(parent);
        var staging = Path.Combine(parent, $".{Path.GetFileName(target)}.tmp-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(staging);
        try
        {
            model.Save(Path.Combine(staging, ModelFileName));
            File.Copy(tokenizerJson, Path.Combine(staging, "tokenizer.json"));
            bool hasTemplate = WriteTokenizerConfig(Path.GetDirectoryName(tokenizerJson)!, Path.Combine(staging, "tokenizer_config.json"), options.Template);
            var config = Config(shape, type, context, eos, tokenizer.BosId, tokenizer.PadId ?? eos[0]);
            File.WriteAllText(Path.Combine(staging, ConfigFileName), config.ToJsonString(JsonOptions) + "\n");
            Replace(staging, target);
            return new GenAiFolderResult(target, type, shape.Layers, context, eos, hasTemplate);
        }
        finally
        {
            if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
        }
    }

    /// <summary>The layout GenAI's configuration describes, read from the graph.</summary>
    private sealed record DecoderShape(int Layers, int KvHeads, int HeadSize, int HiddenSize, int Heads, int VocabSize, bool HasPositions)
    {
        public static DecoderShape Of(Model model)
        {
            var g = model.Graph;
            Value Input(string name) => g.Inputs.FirstOrDefault(v => v.Name == name)
                ?? throw new InvalidDataException($"the model has no '{name}' input; a GenAI folder needs the key/value-cache decoder.");
            var ids = Input("input_ids");
            Input("attention_mask");
            var logits = g.Outputs.FirstOrDefault(v => v.Name == "logits") ?? throw new InvalidDataException("the model has no 'logits' output.");
            int layers = 0;
            while (g.Inputs.Any(v => v.Name == KvCacheInputs.PastKey(layers))) layers++;
            if (layers == 0)
                throw new InvalidDataException($"the model has no '{KvCacheInputs.PastKey(0)}' input; a GenAI folder needs the key/value-cache decoder.");
            var known = new HashSet<string>(StringComparer.Ordinal) { "input_ids", "attention_mask", "position_ids" };
            for (int i = 0; i < layers; i++)
            {
                Input(KvCacheInputs.PastValue(i));
                known.Add(KvCacheInputs.PastKey(i));
                known.Add(KvCacheInputs.PastValue(i));
                foreach (var name in new[] { KvCacheInputs.PresentKey(i), KvCacheInputs.PresentValue(i) })
                    if (!g.Outputs.Any(v => v.Name == name)) throw new InvalidDataException($"the model has no '{name}' output.");
            }
            if (g.Inputs.FirstOrDefault(v => !known.Contains(v.Name) && !v.IsInitializer) is { } extra)
                throw new InvalidDataException($"the model has an input '{extra.Name}' that GenAI does not feed.");
            var past = Input(KvCacheInputs.PastKey(0)).Shape;
            if (past is not { Rank: 4 } || past[1].Value is not long kvHeads || past[3].Value is not long headSize)
                throw new InvalidDataException($"'{KvCacheInputs.PastKey(0)}' must be [batch, kv_heads, past_sequence, head_dim] with fixed heads and width.");
            // The token embedding is the table gathered by input_ids: (vocab, hidden).
            var table = ids.Uses.Where(u => u.Node.OpType == "Gather" && u.InputIndex == 1).Select(u => u.Node.Input(0)?.Initializer)
                .FirstOrDefault(t => t is { Dims.Length: 2 })
                ?? throw new InvalidDataException("the model's input_ids do not gather from a (vocab, hidden) embedding table.");
            long hidden = table.Dims[1];
            long vocab = logits.Shape is { Rank: 3 } s && s[2].Value is long v ? v : table.Dims[0];
            return new DecoderShape(layers, (int)kvHeads, (int)headSize, (int)hidden, (int)(hidden / headSize), (int)vocab,
                g.Inputs.Any(x => x.Name == "position_ids"));
        }
    }

    private static string ModelTypeOf(Model model)
    {
        foreach (var (key, value) in model.MetadataProps)
            if (key == "hf_model_type" && DecoderTypes.Contains(value)) return value;
        return "llama";
    }

    /// <summary>The <c>tokenizer.json</c> a tokenizer argument names (the file, or the one in the folder).</summary>
    private static string TokenizerJson(string path)
    {
        var file = Directory.Exists(path) ? Path.Combine(path, "tokenizer.json") : path;
        if (!File.Exists(file))
            throw new InvalidDataException($"{path}: a GenAI folder needs a Hugging Face tokenizer.json; none found.");
        if (!Path.GetFileName(file).Equals("tokenizer.json", StringComparison.OrdinalIgnoreCase))
            throw new InvalidDataException($"{path}: a GenAI folder needs a Hugging Face tokenizer.json, not '{Path.GetFileName(file)}'.");
        return Path.GetFullPath(file);
    }

    /// <summary>
    /// Copies <c>tokenizer_config.json</c> from <paramref name="sourceDir"/> (or starts an empty one), adding the chat
    /// template when the model has none of its own. Returns whether the result carries a <c>chat_template</c>.
    /// </summary>
    private static bool WriteTokenizerConfig(string sourceDir, string path, ChatTemplate? template)
    {
        var source = Path.Combine(sourceDir, "tokenizer_config.json");
        JsonObject config;
        try
        {
            config = File.Exists(source)
                ? JsonNode.Parse(File.ReadAllText(source)) as JsonObject ?? throw new InvalidDataException($"{source}: expected a JSON object.")
                : [];
        }
        catch (JsonException e) { throw new InvalidDataException($"{source}: not valid JSON ({e.Message})"); }
        // A model's own template: chat_template.jinja first, as Hugging Face reads it, then tokenizer_config.json's.
        var jinja = Path.Combine(sourceDir, "chat_template.jinja");
        if (File.Exists(jinja)) config["chat_template"] = File.ReadAllText(jinja);
        if (config["chat_template"] is null && template is BuiltInChatTemplate builtIn) config["chat_template"] = builtIn.Jinja;
        // GenAI's tokenizer reads the chat template only from a config that names a tokenizer class; this is Hugging Face's
        // generic one for a tokenizer.json.
        config["tokenizer_class"] ??= "PreTrainedTokenizerFast";
        File.WriteAllText(path, config.ToJsonString(JsonOptions) + "\n");
        return config["chat_template"] is not null;
    }

    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    private static JsonObject Config(DecoderShape s, string type, int context, int[] eos, int? bos, int pad)
    {
        var inputs = new JsonObject { ["input_ids"] = "input_ids", ["attention_mask"] = "attention_mask" };
        if (s.HasPositions) inputs["position_ids"] = "position_ids";
        inputs["past_key_names"] = "past_key_values.%d.key";
        inputs["past_value_names"] = "past_key_values.%d.value";
        var model = new JsonObject
        {
            ["bos_token_id"] = bos ?? eos[0],
            ["context_length"] = context,
            ["decoder"] = new JsonObject
            {
                ["session_options"] = new JsonObject { ["log_id"] = "onnxruntime-genai", ["provider_options"] = new JsonArray() },
                ["filename"] = ModelFileName,
                ["head_size"] = s.HeadSize,
                ["hidden_size"] = s.HiddenSize,
                ["inputs"] = inputs,
                ["outputs"] = new JsonObject
                {
                    ["logits"] = "logits",
                    ["present_key_names"] = "present.%d.key",
                    ["present_value_names"] = "present.%d.value",
                },
                ["num_attention_heads"] = s.Heads,
                ["num_hidden_layers"] = s.Layers,
                ["num_key_value_heads"] = s.KvHeads,
            },
            ["eos_token_id"] = eos.Length == 1 ? eos[0] : new JsonArray([.. eos.Select(e => JsonValue.Create(e))]),
            ["pad_token_id"] = pad,
            ["type"] = type,
            ["vocab_size"] = s.VocabSize,
        };
        // Greedy by default, as SafeTune's generator; the past and present caches are separate buffers.
        var search = new JsonObject
        {
            ["diversity_penalty"] = 0.0,
            ["do_sample"] = false,
            ["early_stopping"] = true,
            ["length_penalty"] = 1.0,
            ["max_length"] = context,
            ["min_length"] = 0,
            ["no_repeat_ngram_size"] = 0,
            ["num_beams"] = 1,
            ["num_return_sequences"] = 1,
            ["past_present_share_buffer"] = false,
            ["repetition_penalty"] = 1.0,
            ["temperature"] = 1.0,
            ["top_k"] = 1,
            ["top_p"] = 1.0,
        };
        return new JsonObject { ["model"] = model, ["search"] = search };
    }

    /// <summary>
    /// Refuses a target that exists and is neither an empty folder nor an earlier GenAI folder; callers check before long
    /// work whose result goes there.
    /// </summary>
    /// <exception cref="InvalidDataException">The target is in the way; the message names it.</exception>
    public static void CheckTarget(string directory)
    {
        var target = Path.GetFullPath(directory);
        if (File.Exists(target)) throw new InvalidDataException($"{target}: is a file; a GenAI model folder goes there.");
        if (Directory.Exists(target) && Directory.EnumerateFileSystemEntries(target).Any() && !File.Exists(Path.Combine(target, ConfigFileName)))
            throw new InvalidDataException($"{target}: the folder exists and is not a GenAI model folder (no {ConfigFileName}); choose another or empty it.");
    }

    /// <summary>Moves the finished folder into place; an earlier folder there is moved aside first and removed after.</summary>
    private static void Replace(string staging, string target)
    {
        string? old = null;
        if (Directory.Exists(target))
        {
            old = staging + ".old";
            Directory.Move(target, old);
        }
        Directory.Move(staging, target);
        if (old is not null) Directory.Delete(old, recursive: true);
    }
}
