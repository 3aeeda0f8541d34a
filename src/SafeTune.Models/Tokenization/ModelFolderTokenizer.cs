using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using SafeTune.Models.Chat;
using SafeTune.Models.Chat.Jinja;

namespace SafeTune.Models.Tokenization;

/// <summary>What tokenizing one text or one conversation gives.</summary>
/// <param name="Text">The rendered prompt, for a conversation; <see langword="null"/> for plain text.</param>
/// <param name="Ids">The token ids; <see langword="null"/> when the folder has a chat template but no tokenizer.</param>
/// <param name="Tokens">The token of each id.</param>
public sealed record TokenizeResult(string? Text, int[]? Ids, string?[]? Tokens);

/// <summary>What <see cref="ModelFolderTokenizer.TokenizeJsonl"/> did.</summary>
/// <param name="Rows">Rows written.</param>
/// <param name="Tokens">Ids written, over all rows.</param>
public readonly record struct TokenizeFileSummary(int Rows, long Tokens);

/// <summary>
/// The tokenizer and the chat template of a Hub model folder, as <c>safetune tokenize</c> uses them: plain text is
/// encoded as Hugging Face's tokenizer encodes it, and a conversation is rendered by the model's own template and
/// encoded as <c>apply_chat_template</c> does (no special tokens added beyond what the template writes).
/// </summary>
public sealed class ModelFolderTokenizer
{
    private static readonly string[] TokenizerFiles = ["tokenizer.json", "vocab.json", "tokenizer.model", "vocab.txt"];

    private ModelFolderTokenizer(string path, TextTokenizer? tokenizer, JinjaChatTemplate? template)
    {
        Path = path;
        Tokenizer = tokenizer;
        Template = template;
    }

    /// <summary>The folder (or file) it was loaded from.</summary>
    public string Path { get; }

    /// <summary>The tokenizer; <see langword="null"/> for a folder holding only <c>tokenizer_config.json</c>.</summary>
    public TextTokenizer? Tokenizer { get; }

    /// <summary>The model's own chat template, if it has one.</summary>
    public JinjaChatTemplate? Template { get; }

    /// <summary>Loads the tokenizer and chat template of <paramref name="path"/> (a model folder or a tokenizer file in one).</summary>
    /// <param name="path">The folder or file.</param>
    /// <param name="now">The clock a template's <c>strftime_now</c> reads; local time by default.</param>
    /// <exception cref="FileNotFoundException">Neither a tokenizer nor a chat template is there.</exception>
    /// <exception cref="InvalidDataException">A file is malformed or uses something unsupported; the message names it and the part.</exception>
    public static ModelFolderTokenizer Load(string path, Func<DateTime>? now = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var dir = Directory.Exists(path) ? path : File.Exists(path) ? System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))! : null;
        if (dir is null) throw new FileNotFoundException($"--tokenizer '{path}' is neither a folder nor a file.", path);
        var hasTokenizer = File.Exists(path) && !path.EndsWith("tokenizer_config.json", StringComparison.OrdinalIgnoreCase)
            || TokenizerFiles.Any(f => File.Exists(System.IO.Path.Combine(dir, f)));
        var tokenizer = hasTokenizer ? TokenizerLoader.Load(path) : null;
        var template = ChatTemplates.LoadModelTemplate(path, now);
        if (tokenizer is null && template is null)
            throw new FileNotFoundException(
                $"no tokenizer (tokenizer.json, vocab.json, tokenizer.model, vocab.txt) and no chat template (tokenizer_config.json, chat_template.json, chat_template.jinja) in '{dir}'.", dir);
        return new ModelFolderTokenizer(path, tokenizer, template);
    }

    /// <summary>Encodes plain text (special tokens added as the tokenizer's post-processor says, if <paramref name="addSpecialTokens"/>).</summary>
    /// <exception cref="InvalidOperationException">The folder has no tokenizer.</exception>
    public TokenizeResult TokenizeText(string text, bool addSpecialTokens)
    {
        ArgumentNullException.ThrowIfNull(text);
        var tokenizer = Tokenizer ?? throw new InvalidDataException($"'{Path}' has no tokenizer, so plain text cannot be tokenized (only conversations rendered).");
        var ids = tokenizer.Encode(text, addSpecialTokens);
        return new TokenizeResult(null, ids, [.. ids.Select(tokenizer.IdToToken)]);
    }

    /// <summary>
    /// Renders a conversation (a JSON array of messages, each with <c>role</c> and <c>content</c>) with the model's
    /// template and encodes the result without adding special tokens, as <c>apply_chat_template(tokenize=True)</c> does.
    /// Without a tokenizer only the text is returned.
    /// </summary>
    /// <exception cref="InvalidDataException">The folder has no template, or the template raised or failed (the message names it and its line).</exception>
    public TokenizeResult TokenizeMessages(JsonElement messages, bool addGenerationPrompt)
    {
        if (messages.ValueKind != JsonValueKind.Array) throw new InvalidDataException("\"messages\" must be an array of {\"role\", \"content\"} objects.");
        var template = Template ?? throw new InvalidDataException(
            $"'{Path}' has no chat template (tokenizer_config.json chat_template, chat_template.json or chat_template.jinja), so messages cannot be rendered.");
        string text;
        try
        {
            text = template.Apply(messages, addGenerationPrompt);
        }
        catch (JinjaException e)
        {
            throw new InvalidDataException(e.Message, e);
        }
        if (Tokenizer is null) return new TokenizeResult(text, null, null);
        var ids = Tokenizer.Encode(text, addSpecialTokens: false);
        return new TokenizeResult(text, ids, [.. ids.Select(Tokenizer.IdToToken)]);
    }

    /// <summary>
    /// Tokenizes every row of a JSONL file (<c>{"text"}</c> or <c>{"messages", "add_generation_prompt"}</c>) and writes
    /// one row per input row, in order: <c>{"ids", "tokens"}</c>, plus <c>"text"</c> (the rendered prompt) for messages.
    /// </summary>
    /// <exception cref="InvalidDataException">A row is malformed or its conversation cannot be rendered; the message names the file and line.</exception>
    public TokenizeFileSummary TokenizeJsonl(string inputPath, string outputPath, bool addSpecialTokens)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(inputPath);
        ArgumentException.ThrowIfNullOrWhiteSpace(outputPath);
        if (!File.Exists(inputPath)) throw new FileNotFoundException($"--input '{inputPath}' not found.", inputPath);
        var rows = 0;
        long tokens = 0;
        var options = new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        var temp = outputPath + ".tmp";
        try
        {
            using (var output = File.Create(temp))
        {
                var lineNumber = 0;
                foreach (var line in File.ReadLines(inputPath))
                {
                    lineNumber++;
                    if (string.IsNullOrWhiteSpace(line)) continue;
                    TokenizeResult result;
                    try
                    {
                        using var doc = JsonDocument.Parse(line);
                        result = TokenizeRow(doc.RootElement, addSpecialTokens);
                    }
                    catch (JsonException e)
                    {
                        throw new InvalidDataException($"'{inputPath}' line {lineNumber}: not valid JSON: {e.Message}", e);
                    }
                    catch (InvalidDataException e)
                    {
                        throw new InvalidDataException($"'{inputPath}' line {lineNumber}: {e.Message}", e);
                    }
                    using (var w = new Utf8JsonWriter(output, options)) Write(w, result);
                    output.Write("\n"u8);
                    rows++;
                    tokens += result.Ids?.Length ?? 0;
                }
            }
            File.Move(temp, outputPath, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
        return new TokenizeFileSummary(rows, tokens);
    }

    private TokenizeResult TokenizeRow(JsonElement row, bool addSpecialTokens)
    {
        if (row.ValueKind != JsonValueKind.Object) throw new InvalidDataException("a row must be a JSON object with \"text\" or \"messages\".");
        if (row.TryGetProperty("messages", out var messages))
        {
            var addGenerationPrompt = row.TryGetProperty("add_generation_prompt", out var agp) && agp.ValueKind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False or JsonValueKind.Null => false,
                _ => throw new InvalidDataException("\"add_generation_prompt\" must be true or false."),
            };
            return TokenizeMessages(messages, addGenerationPrompt);
        }
        if (row.TryGetProperty("text", out var text))
        {
            if (text.ValueKind != JsonValueKind.String) throw new InvalidDataException("\"text\" must be a string.");
            return TokenizeText(text.GetString()!, addSpecialTokens);
        }
        throw new InvalidDataException("a row needs \"text\" or \"messages\".");
    }

    /// <summary>Writes <paramref name="result"/> as one JSON object: <c>ids</c>, <c>tokens</c>, and <c>text</c> when there is one.</summary>
    public static void Write(Utf8JsonWriter w, TokenizeResult result)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(result);
        w.WriteStartObject();
        WriteFields(w, result);
        w.WriteEndObject();
    }

    /// <summary>Writes the fields of <paramref name="result"/> into an object already open.</summary>
    public static void WriteFields(Utf8JsonWriter w, TokenizeResult result)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(result);
        if (result.Ids is not null)
        {
            w.WriteStartArray("ids");
            foreach (var id in result.Ids) w.WriteNumberValue(id);
            w.WriteEndArray();
            w.WriteStartArray("tokens");
            foreach (var t in result.Tokens!)
                if (t is null) w.WriteNullValue();
                else w.WriteStringValue(t);
            w.WriteEndArray();
        }
        if (result.Text is not null) w.WriteString("text", result.Text);
    }

    /// <summary>A one-line, human-readable rendering of tokens: <c>id:token</c> pairs separated by spaces.</summary>
    public static string Describe(TokenizeResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        if (result.Ids is null) return "";
        var sb = new StringBuilder();
        for (var i = 0; i < result.Ids.Length; i++)
        {
            if (i > 0) sb.Append(' ');
            sb.Append(result.Ids[i]).Append(':').Append(JsonSerializer.Serialize(result.Tokens![i], DescribeOptions));
        }
        return sb.ToString();
    }

    private static readonly JsonSerializerOptions DescribeOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
}
