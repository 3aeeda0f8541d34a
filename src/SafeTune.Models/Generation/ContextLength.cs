using System.Globalization;
using System.Text.Json;
using SafeTune.Models.Tokenization;
using SafeTune.Onnx;

namespace SafeTune.Models.Generation;

/// <summary>A prompt with more tokens than the model's context allows.</summary>
/// <param name="message">What is too long, where, and the limit.</param>
/// <param name="tokens">The prompt's tokens (a lower bound when the prompt was too long to tokenize at all).</param>
/// <param name="limit">The context length it exceeds.</param>
public sealed class PromptTooLongException(string message, long tokens, int limit) : Exception(message)
{
    /// <summary>The prompt's tokens (a lower bound when it was refused by its length in characters).</summary>
    public long Tokens { get; } = tokens;

    /// <summary>The context length.</summary>
    public int Limit { get; } = limit;
}

/// <summary>
/// The most tokens a model reads at once, and prompts held to it. The limit comes from the model's metadata
/// (<c>max_position_embeddings</c>, written by the Hugging Face exporter), a learned position table (GPT-2's <c>wpe</c>),
/// or <c>model_max_length</c> in the <c>tokenizer_config.json</c> beside the tokenizer; a caller's option overrides all three.
/// </summary>
public static class ContextLength
{
    /// <summary>The model metadata key that records the context length.</summary>
    public const string MetadataKey = "max_position_embeddings";

    /// <summary>The limit used when neither the model nor its tokenizer says.</summary>
    public const int Default = 2048;

    /// <summary>
    /// A prompt longer than this many characters per token of the limit is refused (or cut) before it is tokenized, so
    /// that a multi-megabyte line costs no tokenizer time. No vocabulary has tokens of 64 characters on average.
    /// </summary>
    public const int MaxCharsPerToken = 64;

    /// <summary>The context length the model or its tokenizer declares, or null when neither says.</summary>
    public static int? Of(Model model, string? tokenizerPath = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        foreach (var (key, value) in model.MetadataProps)
            if (key == MetadataKey && int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0) return n;
        var positions = model.Graph.Initializers.FirstOrDefault(v => v.Name.EndsWith("wpe.weight", StringComparison.Ordinal));
        if (positions?.Initializer is { Dims.Length: 2 } table && table.Dims[0] is > 0 and <= int.MaxValue) return (int)table.Dims[0];
        return tokenizerPath is null ? null : FromTokenizerConfig(tokenizerPath);
    }

    /// <summary><c>model_max_length</c> from the <c>tokenizer_config.json</c> beside a tokenizer (HF's "unset" sentinel ignored).</summary>
    private static int? FromTokenizerConfig(string tokenizerPath)
    {
        var folder = Directory.Exists(tokenizerPath) ? tokenizerPath : File.Exists(tokenizerPath) ? Path.GetDirectoryName(Path.GetFullPath(tokenizerPath)) : null;
        var config = folder is null ? null : Path.Combine(folder, "tokenizer_config.json");
        if (config is null || SafePaths.KindOf(config) != FileKind.Regular) return null;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(config));
            return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("model_max_length", out var m)
                && m.ValueKind == JsonValueKind.Number && m.TryGetDouble(out var d) && d >= 1 && d <= 10_000_000 ? (int)d : null;
        }
        catch (JsonException) { return null; }
    }

    /// <summary>
    /// Tokenizes <paramref name="text"/> and holds it to <paramref name="limit"/> tokens: with <paramref name="truncate"/>
    /// the prompt keeps its last tokens (where the request is), otherwise <see cref="PromptTooLongException"/> names
    /// <paramref name="where"/>, the count and the limit, with <paramref name="option"/> as the way to change it.
    /// </summary>
    public static int[] Encode(TextTokenizer tokenizer, string text, int limit, bool truncate, string where, string option)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(text);
        long maxChars = (long)limit * MaxCharsPerToken;
        if (text.Length > maxChars)
        {
            if (!truncate)
                throw new PromptTooLongException(
                    $"{where}: the prompt has {text.Length.ToString("N0", CultureInfo.InvariantCulture)} characters, far more than the model's context of {limit} tokens ({option}).",
                    text.Length / MaxCharsPerToken, limit);
            text = text[^(int)maxChars..];
        }
        var ids = tokenizer.Encode(text);
        if (ids.Length <= limit) return ids;
        if (!truncate)
            throw new PromptTooLongException($"{where}: the prompt has {ids.Length} tokens, more than the model's context of {limit} tokens ({option}).", ids.Length, limit);
        return ids[^limit..];
    }
}
