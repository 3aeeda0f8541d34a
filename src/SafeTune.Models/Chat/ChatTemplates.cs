using System.Text.Json;
using SafeTune.Models.Tokenization;

namespace SafeTune.Models.Chat;

/// <summary>The built-in chat templates and how to pick one.</summary>
public static class ChatTemplates
{
    /// <summary>ChatML (Qwen).</summary>
    public static ChatTemplate ChatMl { get; } = new ChatMlTemplate();

    /// <summary>Llama 3.</summary>
    public static ChatTemplate Llama3 { get; } = new Llama3Template();

    /// <summary>Phi-3.</summary>
    public static ChatTemplate Phi3 { get; } = new Phi3Template();

    /// <summary>Plain <c>User:</c> / <c>Assistant:</c> text.</summary>
    public static ChatTemplate Plain { get; } = new PlainTemplate();

    /// <summary>The names <see cref="ByName"/> accepts.</summary>
    public static IReadOnlyList<string> Names { get; } = ["chatml", "llama3", "phi3", "plain"];

    /// <summary>The template called <paramref name="name"/> (chatml, llama3, phi3 or plain; case-insensitive).</summary>
    /// <exception cref="ArgumentException">The name is none of those.</exception>
    public static ChatTemplate ByName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return name.Trim().ToLowerInvariant() switch
        {
            "chatml" => ChatMl,
            "llama3" => Llama3,
            "phi3" => Phi3,
            "plain" => Plain,
            _ => throw new ArgumentException($"unknown chat template '{name}'; choose one of: {string.Join(", ", Names)}.", nameof(name)),
        };
    }

    /// <summary>
    /// Checks that <paramref name="template"/> fits <paramref name="tokenizer"/>: a chat template's end-of-turn marker must be
    /// one of the tokenizer's special tokens (<c>--template llama3</c> on a ChatML tokenizer would train and evaluate on
    /// markers the model never saw). When the plain template was a fallback (<paramref name="chosen"/> false: no template
    /// was named and no <c>tokenizer_config.json</c> names one) but the tokenizer's special tokens are a chat format's, the
    /// model would read raw text it was not trained on, so that is refused too, naming the template to pass.
    /// </summary>
    /// <exception cref="ArgumentException">The template does not fit the tokenizer; the message names --template.</exception>
    public static void RequireFits(ChatTemplate template, TextTokenizer tokenizer, bool chosen)
    {
        ArgumentNullException.ThrowIfNull(template);
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (template != Plain)
        {
            var marker = template.EndOfTurn.Trim();
            if (!tokenizer.SpecialTokens.ContainsKey(marker))
                throw new ArgumentException($"--template {template.Name}: the tokenizer ({tokenizer.Source}) has no special token {marker}, so the model was not trained with this template" +
                    (SuggestFor(tokenizer) is { } suggested ? $"; its special tokens are {suggested.Name}'s." : "."));
            return;
        }
        if (!chosen && SuggestFor(tokenizer) is { } chat)
            throw new ArgumentException($"the tokenizer ({tokenizer.Source}) has {chat.Name} special tokens but no tokenizer_config.json names its template: " +
                $"pass --template {chat.Name}, or --template plain to use raw text.");
    }

    /// <summary>The chat template whose markers are the tokenizer's special tokens, or null.</summary>
    private static ChatTemplate? SuggestFor(TextTokenizer tokenizer) =>
        tokenizer.SpecialTokens.ContainsKey("<|im_start|>") && tokenizer.SpecialTokens.ContainsKey("<|im_end|>") ? ChatMl
        : tokenizer.SpecialTokens.ContainsKey("<|start_header_id|>") && tokenizer.SpecialTokens.ContainsKey("<|eot_id|>") ? Llama3
        : tokenizer.SpecialTokens.ContainsKey("<|user|>") && tokenizer.SpecialTokens.ContainsKey("<|end|>") ? Phi3
        : null;

    /// <summary>
    /// Recognises the template from a Jinja <c>chat_template</c> string: <c>&lt;|im_start|&gt;</c> → ChatML,
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
    /// Recognises the template from the <c>chat_template</c> of a <c>tokenizer_config.json</c> (a file, or a folder holding
    /// one), see <see cref="Detect"/>. A missing <c>chat_template</c> gives Plain.
    /// </summary>
    /// <exception cref="FileNotFoundException">There is no such file.</exception>
    /// <exception cref="InvalidDataException">The file is not valid JSON.</exception>
    public static ChatTemplate FromTokenizerConfig(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (Directory.Exists(path)) path = Path.Combine(path, "tokenizer_config.json");
        if (!File.Exists(path)) throw new FileNotFoundException($"'{path}' not found.", path);
        JsonDocument doc;
        try
        {
            using var stream = File.OpenRead(path);
            doc = JsonDocument.Parse(stream, new JsonDocumentOptions { AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"'{path}' is not valid JSON: {e.Message}", e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("chat_template", out var t)) return Plain;
            return t.ValueKind switch
            {
                JsonValueKind.String => Detect(t.GetString()),
                // Some configs list named templates: [{"name": "default", "template": "..."}, ...].
                JsonValueKind.Array => Detect(string.Concat(t.EnumerateArray()
                    .Where(x => x.ValueKind == JsonValueKind.Object && x.TryGetProperty("template", out var s) && s.ValueKind == JsonValueKind.String)
                    .Select(x => x.GetProperty("template").GetString()))),
                _ => Plain,
            };
        }
    }
}
