using SafeTune.Models.Chat.Jinja;
using SafeTune.Models.Tokenization;

namespace SafeTune.Models.Chat;

/// <summary>
/// A model's own Jinja chat template, rendered as Hugging Face's <c>apply_chat_template</c> does: the variables are
/// <c>messages</c>, <c>add_generation_prompt</c>, <c>tools</c> and <c>documents</c> (both none) and the special tokens
/// of <c>tokenizer_config.json</c> (<c>bos_token</c>, <c>eos_token</c>, ...).
/// </summary>
/// <remarks>
/// The prompt is the conversation rendered with <c>add_generation_prompt</c> on; the full text is the conversation with
/// the response appended as a final assistant turn, rendered with it off. The prompt must be a prefix of the full text:
/// that is where the response (and the label mask) begins. A template for which it is not fails with an
/// <see cref="InvalidDataException"/> that names the template, rather than train on a misplaced boundary.
/// </remarks>
public sealed class JinjaChatTemplate : ChatTemplate
{
    private const string ProbeUser = "Hello";
    private const string ProbeResponse = "Hi there, how can I help?";

    private readonly JinjaTemplate _template;
    private readonly IReadOnlyDictionary<string, string> _specialTokens;
    private readonly Func<DateTime>? _now;
    private string? _endOfTurn;

    /// <summary>Creates a template from its Jinja source.</summary>
    /// <param name="source">The Jinja text.</param>
    /// <param name="name">Where it came from (used in every error message).</param>
    /// <param name="specialTokens">Special-token variables (<c>bos_token</c>, <c>eos_token</c>, ...).</param>
    /// <param name="now">The clock <c>strftime_now</c> reads; local time by default.</param>
    /// <exception cref="JinjaException">The template is malformed or uses an unsupported Jinja feature.</exception>
    public JinjaChatTemplate(string source, string name, IReadOnlyDictionary<string, string>? specialTokens = null, Func<DateTime>? now = null)
    {
        _template = JinjaTemplate.Parse(source, name);
        _specialTokens = specialTokens ?? new Dictionary<string, string>();
        _now = now;
        Name = name;
    }

    /// <inheritdoc/>
    public override string Name { get; }

    /// <summary>The Jinja source.</summary>
    public string Source => _template.Source;

    /// <summary>The special-token variables the template sees.</summary>
    public IReadOnlyDictionary<string, string> SpecialTokens => _specialTokens;

    /// <summary>
    /// What the template writes after an assistant response (for example <c>&lt;|im_end|&gt;\n</c>), found by rendering a
    /// one-turn conversation with and without a known response.
    /// </summary>
    public override string EndOfTurn => _endOfTurn ??= FindEndOfTurn();

    /// <summary>Renders <paramref name="messages"/> as they are, with <c>add_generation_prompt</c> as given.</summary>
    /// <exception cref="JinjaException">The template raised or failed.</exception>
    public string Apply(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt)
    {
        ArgumentNullException.ThrowIfNull(messages);
        return Render(messages.ToList(), addGenerationPrompt);
    }

    /// <summary>
    /// Renders messages given as JSON (an array of objects with <c>role</c> and <c>content</c>; content may be a string
    /// or a list of parts, and other keys such as <c>tool_calls</c> pass through), with <c>add_generation_prompt</c> as given.
    /// </summary>
    /// <exception cref="JinjaException">The template raised or failed.</exception>
    public string Apply(System.Text.Json.JsonElement messages, bool addGenerationPrompt) => Render(messages, addGenerationPrompt);

    private string Render(object messages, bool addGenerationPrompt)
    {
        var variables = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["messages"] = messages,
            ["add_generation_prompt"] = addGenerationPrompt,
            ["tools"] = null,
            ["documents"] = null,
        };
        foreach (var (k, v) in _specialTokens) variables[k] = v;
        return _template.Render(variables, _now);
    }

    /// <inheritdoc/>
    public override string RenderPrompt(IReadOnlyList<ChatMessage> messages) => Apply(messages, addGenerationPrompt: true);

    /// <inheritdoc/>
    public override string Render(IReadOnlyList<ChatMessage> messages, string response)
    {
        ArgumentNullException.ThrowIfNull(messages);
        ArgumentNullException.ThrowIfNull(response);
        var prompt = RenderPrompt(messages);
        var full = Apply([.. messages, ChatMessage.Assistant(response)], addGenerationPrompt: false);
        if (!full.StartsWith(prompt, StringComparison.Ordinal))
            throw new InvalidDataException(
                $"chat template '{Name}': the conversation rendered without its final assistant turn is not a prefix of the conversation "
                + $"rendered with it (at character {CommonPrefix(prompt, full)}), so the prompt/response boundary and the label mask are undefined.");
        return full;
    }

    /// <summary>
    /// Tokenizes as Hugging Face's SFT tooling does with a chat template: the ids are the whole conversation (response as
    /// the final assistant turn) encoded at once, and the prompt length is the number of ids of the prompt encoded on its
    /// own (no special tokens added in either case: the template writes them). The prompt's ids must be a prefix of the
    /// conversation's ids.
    /// </summary>
    /// <exception cref="InvalidDataException">The prompt's ids are not a prefix of the conversation's ids; the message names the template.</exception>
    public override TokenizedChat Tokenize(TextTokenizer tokenizer, IReadOnlyList<ChatMessage> messages, string response)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        var prompt = tokenizer.Encode(RenderPrompt(messages));
        var full = tokenizer.Encode(Render(messages, response));
        if (!full.AsSpan().StartsWith(prompt))
            throw new InvalidDataException(
                $"chat template '{Name}': the prompt's tokens are not a prefix of the conversation's tokens (the text boundary falls inside a token), "
                + "so the label mask cannot start at the response.");
        return new TokenizedChat(full, prompt.Length);
    }

    /// <inheritdoc/>
    public override string RenderResponse(string response)
    {
        ArgumentNullException.ThrowIfNull(response);
        ChatMessage[] probe = [ChatMessage.User(ProbeUser)];
        return Render(probe, response)[RenderPrompt(probe).Length..];
    }

    private string FindEndOfTurn()
    {
        var tail = RenderResponse(ProbeResponse);
        var at = tail.LastIndexOf(ProbeResponse, StringComparison.Ordinal);
        return at < 0 ? string.Empty : tail[(at + ProbeResponse.Length)..];
    }

    private static int CommonPrefix(string a, string b)
    {
        var n = 0;
        while (n < a.Length && n < b.Length && a[n] == b[n]) n++;
        return n;
    }
}
