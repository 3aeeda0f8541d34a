using System.Text.Json;
using SafeTune.Models.Tokenization;
using SafeTune.Onnx;

namespace SafeTune.Models.Chat;

/// <summary>The built-in chat templates and how to pick one.</summary>
public static class ChatTemplates
{
    /// <summary>ChatML (Qwen).</summary>
    public static ChatTemplate ChatMl { get; } = new ChatMlTemplate();

    /// <summary>Llama 3 Instruct: each turn opens with a role header and closes with <c>&lt;|eot_id|&gt;</c>.</summary>
    public static ChatTemplate Llama3 { get; } = new Llama3Template();

    /// <summary>Phi-3 Instruct: each turn opens with a role tag such as <c>&lt;|user|&gt;</c> and closes with <c>&lt;|end|&gt;</c>.</summary>
    public static ChatTemplate Phi3 { get; } = new Phi3Template();

    /// <summary>Plain <c>User:</c> / <c>Assistant:</c> text.</summary>
    public static ChatTemplate Plain { get; } = new PlainTemplate();

    /// <summary>The names <see cref="ByName"/> accepts.</summary>
    public static IReadOnlyList<string> Names { get; } = ["chatml", "llama3", "phi3", "plain"];

    /// <summary>The template called <paramref name="name"/> (chatml, llama3, phi3 or plain; case-insensitive).</summary>
    /// <exception cref="UserInputException">The name is none of those.</exception>
    public static ChatTemplate ByName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return name.Trim().ToLowerInvariant() switch
        {
            "chatml" => ChatMl,
            "llama3" => Llama3,
            "phi3" => Phi3,
            "plain" => Plain,
            _ => throw new UserInputException($"unknown chat template '{name}'; choose one of: {string.Join(", ", Names)}."),
        };
    }

    /// <summary>
    /// Checks that <paramref name="template"/> fits <paramref name="tokenizer"/>: a chat template's end-of-turn marker must be
    /// one of the tokenizer's special tokens (<c>--template llama3</c> on a ChatML tokenizer would train and evaluate on
    /// markers the model never saw). When the plain template was a fallback (<paramref name="chosen"/> false: no template
    /// was named and no <c>tokenizer_config.json</c> names one) but the tokenizer's special tokens are a chat format's, the
    /// model would read raw text it was not trained on, so that is refused too, naming the template to pass.
    /// </summary>
    /// <exception cref="UserInputException">The template does not fit the tokenizer; the message names --template.</exception>
    public static void RequireFits(ChatTemplate template, TextTokenizer tokenizer, bool chosen)
    {
        ArgumentNullException.ThrowIfNull(template);
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (template is JinjaChatTemplate) return; // the model's own template, read from its folder
        if (template != Plain)
        {
            var marker = template.EndOfTurn.Trim();
            if (!tokenizer.SpecialTokens.ContainsKey(marker))
                throw new OptionException("template", $"{{template}} {template.Name}: the tokenizer ({tokenizer.Source}) has no special token {marker}, so the model was not trained with this template" +
                    (SuggestFor(tokenizer) is { } suggested ? $"; its special tokens are {suggested.Name}'s." : "."));
            return;
        }
        if (!chosen && SuggestFor(tokenizer) is { } chat)
            throw new OptionException("template", $"the tokenizer ({tokenizer.Source}) has {chat.Name} special tokens but no tokenizer_config.json names its template: " +
                $"pass {{template}} {chat.Name}, or {{template}} plain to use raw text.");
    }

    /// <summary>The chat template whose markers are the tokenizer's special tokens, or null.</summary>
    private static ChatTemplate? SuggestFor(TextTokenizer tokenizer) =>
        tokenizer.SpecialTokens.ContainsKey("<|im_start|>") && tokenizer.SpecialTokens.ContainsKey("<|im_end|>") ? ChatMl
        : tokenizer.SpecialTokens.ContainsKey("<|start_header_id|>") && tokenizer.SpecialTokens.ContainsKey("<|eot_id|>") ? Llama3
        : tokenizer.SpecialTokens.ContainsKey("<|user|>") && tokenizer.SpecialTokens.ContainsKey("<|end|>") ? Phi3
        : null;

    /// <summary>
    /// The built-in template closest to a Jinja <c>chat_template</c> string: <c>&lt;|im_start|&gt;</c> → ChatML,
    /// <c>&lt;|start_header_id|&gt;</c> → Llama 3, <c>&lt;|user|&gt;</c> with <c>&lt;|end|&gt;</c> → Phi-3, anything else → Plain.
    /// </summary>
    public static ChatTemplate Detect(string? chatTemplate)
    {
        if (string.IsNullOrEmpty(chatTemplate)) return Plain;
        if (chatTemplate.Contains("<|im_start|>", StringComparison.Ordinal)) return ChatMl;
        if (chatTemplate.Contains("<|start_header_id|>", StringComparison.Ordinal)) return Llama3;
        if (chatTemplate.Contains("<|user|>", StringComparison.Ordinal) && chatTemplate.Contains("<|end|>", StringComparison.Ordinal)) return Phi3;
        return Plain;
    }

    /// <summary>
    /// The chat template of a Hub model folder (or of the folder holding the given <c>tokenizer_config.json</c>): the
    /// model's own Jinja template when it ships one (see <see cref="LoadModelTemplate"/>), else <see cref="Plain"/>.
    /// </summary>
    /// <exception cref="FileNotFoundException">There is no such file or folder.</exception>
    /// <exception cref="InvalidDataException">A file is not valid JSON, or the template cannot be parsed; the message names it.</exception>
    public static ChatTemplate FromTokenizerConfig(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (!Directory.Exists(path) && !File.Exists(path)) throw new FileNotFoundException($"'{path}' not found.", path);
        return LoadModelTemplate(path) ?? Plain;
    }

    /// <summary>
    /// A model's own chat template, looked up as Hugging Face does: <c>chat_template.jinja</c>, then
    /// <c>chat_template.json</c>, then the <c>chat_template</c> of <c>tokenizer_config.json</c> (a string, or a list of
    /// named templates of which <c>default</c> is taken). The special tokens of <c>tokenizer_config.json</c> become its
    /// variables. <see langword="null"/> when the model has no template.
    /// </summary>
    /// <param name="path">A model folder, or a file inside it (such as its <c>tokenizer_config.json</c>).</param>
    /// <param name="now">The clock <c>strftime_now</c> reads; local time by default.</param>
    /// <exception cref="InvalidDataException">A file is not valid JSON, or the template cannot be parsed; the message names it.</exception>
    public static JinjaChatTemplate? LoadModelTemplate(string path, Func<DateTime>? now = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var dir = Directory.Exists(path) ? path : Path.GetDirectoryName(Path.GetFullPath(path))!;
        var configPath = File.Exists(path) && !Directory.Exists(path) && path.EndsWith(".json", StringComparison.OrdinalIgnoreCase)
            && !Path.GetFileName(path).Equals("chat_template.json", StringComparison.OrdinalIgnoreCase)
            ? path
            : Path.Combine(dir, "tokenizer_config.json");

        var specials = new Dictionary<string, string>(StringComparer.Ordinal);
        string? fromConfig = null;
        if (File.Exists(configPath))
        {
            using var doc = ReadJson(configPath);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"'{configPath}': expected a JSON object.");
            foreach (var key in SpecialTokenKeys)
            {
                if (!root.TryGetProperty(key, out var t)) continue;
                var value = t.ValueKind switch
                {
                    JsonValueKind.String => t.GetString(),
                    JsonValueKind.Object when t.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String => c.GetString(),
                    _ => null,
                };
                if (!string.IsNullOrEmpty(value)) specials[key] = value;
            }
            if (root.TryGetProperty("chat_template", out var ct)) fromConfig = TemplateText(ct, configPath);
        }

        string? source = null, origin = null;
        var jinjaPath = Path.Combine(dir, "chat_template.jinja");
        var jsonPath = Path.Combine(dir, "chat_template.json");
        if (File.Exists(jinjaPath))
        {
            source = File.ReadAllText(jinjaPath);
            origin = jinjaPath;
        }
        else if (File.Exists(jsonPath))
        {
            using var doc = ReadJson(jsonPath);
            if (doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("chat_template", out var ct))
            {
                source = TemplateText(ct, jsonPath);
                origin = jsonPath;
            }
        }
        if (source is null && fromConfig is not null)
        {
            source = fromConfig;
            origin = configPath + " (chat_template)";
        }
        if (source is null) return null;
        try
        {
            return new JinjaChatTemplate(source, origin!, specials, now);
        }
        catch (Jinja.JinjaException e)
        {
            throw new InvalidDataException(e.Message, e);
        }
    }

    private static readonly string[] SpecialTokenKeys = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"];

    private static string? TemplateText(JsonElement t, string path) => t.ValueKind switch
    {
        JsonValueKind.String => t.GetString(),
        JsonValueKind.Null => null,
        // Some configs list named templates: [{"name": "default", "template": "..."}, {"name": "tool_use", ...}].
        JsonValueKind.Array => t.EnumerateArray()
            .Where(x => x.ValueKind == JsonValueKind.Object && x.TryGetProperty("name", out var n) && n.GetString() == "default"
                        && x.TryGetProperty("template", out var s) && s.ValueKind == JsonValueKind.String)
            .Select(x => x.GetProperty("template").GetString())
            .FirstOrDefault() ?? throw new InvalidDataException($"'{path}': chat_template lists named templates but none is called 'default'."),
        _ => throw new InvalidDataException($"'{path}': chat_template must be a string or a list of named templates."),
    };

    private static JsonDocument ReadJson(string path)
    {
        try
        {
            using var stream = File.OpenRead(path);
            return JsonDocument.Parse(stream, new JsonDocumentOptions { AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"'{path}' is not valid JSON: {e.Message}", e);
        }
    }
}
