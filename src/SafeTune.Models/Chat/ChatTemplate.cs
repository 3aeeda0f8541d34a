using System.Text;
using SafeTune.Models.Tokenization;

namespace SafeTune.Models.Chat;

/// <summary>
/// Renders a conversation into model text. The prompt (<see cref="RenderPrompt"/>) runs up to and including the assistant
/// header that generation continues from; the response and its end-of-turn marker follow it.
/// </summary>
/// <remarks>
/// Two kinds exist: the built-in templates (<see cref="BuiltInChatTemplate"/>: chatml, llama3, phi3, plain) and a model's own
/// Jinja template (<see cref="JinjaChatTemplate"/>), which wins wherever the model ships one.
/// </remarks>
public abstract class ChatTemplate
{
    /// <summary>The label value that the loss ignores.</summary>
    public const int IgnoreIndex = -100;

    /// <summary>The template's name: a built-in name (<see cref="ChatTemplates.ByName"/>) or where a model's template came from.</summary>
    public abstract string Name { get; }

    /// <summary>The text that closes an assistant response (for example <c>&lt;|im_end|&gt;\n</c>).</summary>
    public abstract string EndOfTurn { get; }

    /// <summary>
    /// The prompt text: every message, then the assistant header. It never contains a response token; this is what
    /// generation and the safety probe read.
    /// </summary>
    public abstract string RenderPrompt(IReadOnlyList<ChatMessage> messages);

    /// <summary>The full text of <paramref name="messages"/> followed by the assistant's <paramref name="response"/>.</summary>
    /// <exception cref="InvalidDataException">The template does not render the prompt as a prefix of the full text.</exception>
    public abstract string Render(IReadOnlyList<ChatMessage> messages, string response);

    /// <summary>The response text that follows the prompt: the response and the end-of-turn marker.</summary>
    public virtual string RenderResponse(string response)
    {
        ArgumentNullException.ThrowIfNull(response);
        return response + EndOfTurn;
    }

    /// <summary>
    /// Tokenizes the prompt and the response separately and concatenates them, so that
    /// <c>Ids[..PromptLength]</c> is exactly <c>tokenizer.Encode(RenderPrompt(messages))</c> and no token straddles the boundary.
    /// The response part is what <see cref="Render"/> writes after the prompt.
    /// </summary>
    /// <exception cref="InvalidDataException">The template does not render the prompt as a prefix of the full text.</exception>
    public virtual TokenizedChat Tokenize(TextTokenizer tokenizer, IReadOnlyList<ChatMessage> messages, string response)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        var promptText = RenderPrompt(messages);
        var fullText = Render(messages, response);
        var prompt = tokenizer.Encode(promptText);
        var answer = tokenizer.Encode(fullText[promptText.Length..]);
        return new TokenizedChat([.. prompt, .. answer], prompt.Length);
    }

    /// <summary>
    /// Next-token labels: <c>labels[t] = ids[t + 1]</c> where position <c>t + 1</c> is a response token
    /// (<c>t + 1 &gt;= promptLength</c>), else <see cref="IgnoreIndex"/>; the last label is always <see cref="IgnoreIndex"/>.
    /// </summary>
    public static int[] Labels(ReadOnlySpan<int> ids, int promptLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(promptLength);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(promptLength, ids.Length);
        var labels = new int[ids.Length];
        for (var t = 0; t < ids.Length; t++)
            labels[t] = t + 1 < ids.Length && t + 1 >= promptLength ? ids[t + 1] : IgnoreIndex;
        return labels;
    }

    /// <inheritdoc/>
    public override string ToString() => Name;
}

/// <summary>A built-in template: a preamble, one rendering per message, and a generation prompt.</summary>
public abstract class BuiltInChatTemplate : ChatTemplate
{
    /// <summary>The text that begins every rendering (for example <c>&lt;|begin_of_text|&gt;</c>); empty by default.</summary>
    protected virtual string Preamble => string.Empty;

    /// <summary>The assistant header that generation continues from.</summary>
    protected abstract string GenerationPrompt { get; }

    /// <summary>Renders one complete message.</summary>
    protected abstract string RenderMessage(ChatMessage message);

    /// <summary>
    /// The same template in Hugging Face's Jinja form (a <c>chat_template</c> for <c>tokenizer_config.json</c>): with
    /// <c>add_generation_prompt</c> it renders what <see cref="RenderPrompt"/> does.
    /// </summary>
    public abstract string Jinja { get; }

    /// <inheritdoc/>
    public override string RenderPrompt(IReadOnlyList<ChatMessage> messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var sb = new StringBuilder(Preamble);
        foreach (var m in messages)
        {
            ArgumentNullException.ThrowIfNull(m);
            sb.Append(RenderMessage(m));
        }
        return sb.Append(GenerationPrompt).ToString();
    }

    /// <inheritdoc/>
    public override string Render(IReadOnlyList<ChatMessage> messages, string response) => RenderPrompt(messages) + RenderResponse(response);
}

/// <summary>ChatML (Qwen): <c>&lt;|im_start|&gt;role\ncontent&lt;|im_end|&gt;\n</c>.</summary>
public sealed class ChatMlTemplate : BuiltInChatTemplate
{
    /// <inheritdoc/>
    public override string Jinja => """
        {% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}
        """;

    /// <inheritdoc/>
    public override string Name => "chatml";

    /// <inheritdoc/>
    public override string EndOfTurn => "<|im_end|>\n";

    /// <inheritdoc/>
    protected override string GenerationPrompt => "<|im_start|>assistant\n";

    /// <inheritdoc/>
    protected override string RenderMessage(ChatMessage message) => $"<|im_start|>{message.Role}\n{message.Content}<|im_end|>\n";
}

/// <summary>Llama 3: <c>&lt;|begin_of_text|&gt;</c>, then <c>&lt;|start_header_id|&gt;role&lt;|end_header_id|&gt;\n\ncontent&lt;|eot_id|&gt;</c> per message.</summary>
public sealed class Llama3Template : BuiltInChatTemplate
{
    /// <inheritdoc/>
    public override string Jinja => """
        {{ '<|begin_of_text|>' }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}
        """;

    /// <inheritdoc/>
    public override string Name => "llama3";

    /// <inheritdoc/>
    public override string EndOfTurn => "<|eot_id|>";

    /// <inheritdoc/>
    protected override string Preamble => "<|begin_of_text|>";

    /// <inheritdoc/>
    protected override string GenerationPrompt => "<|start_header_id|>assistant<|end_header_id|>\n\n";

    /// <inheritdoc/>
    protected override string RenderMessage(ChatMessage message) =>
        $"<|start_header_id|>{message.Role}<|end_header_id|>\n\n{message.Content}<|eot_id|>";
}

/// <summary>Phi-3: <c>&lt;|role|&gt;\ncontent&lt;|end|&gt;\n</c>, generation prompt <c>&lt;|assistant|&gt;\n</c>.</summary>
public sealed class Phi3Template : BuiltInChatTemplate
{
    /// <inheritdoc/>
    public override string Jinja => """
        {% for message in messages %}{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}
        """;

    /// <inheritdoc/>
    public override string Name => "phi3";

    /// <inheritdoc/>
    public override string EndOfTurn => "<|end|>\n";

    /// <inheritdoc/>
    protected override string GenerationPrompt => "<|assistant|>\n";

    /// <inheritdoc/>
    protected override string RenderMessage(ChatMessage message) => $"<|{message.Role}|>\n{message.Content}<|end|>\n";
}

/// <summary>
/// Plain text for models without a chat format: <c>System: …\n</c>, <c>User: …\n</c>, <c>Assistant: …\n</c>; the
/// generation prompt is <c>Assistant: </c> and a response ends with a newline.
/// </summary>
public sealed class PlainTemplate : BuiltInChatTemplate
{
    /// <inheritdoc/>
    public override string Jinja => """
        {% for message in messages %}{{ message['role'][:1] | upper }}{{ message['role'][1:] + ': ' + message['content'] + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}
        """;

    /// <inheritdoc/>
    public override string Name => "plain";

    /// <inheritdoc/>
    public override string EndOfTurn => "\n";

    /// <inheritdoc/>
    protected override string GenerationPrompt => "Assistant: ";

    /// <inheritdoc/>
    protected override string RenderMessage(ChatMessage message) => $"{Label(message.Role)}: {message.Content}\n";

    private static string Label(string role) => role.Length == 0 ? role : char.ToUpperInvariant(role[0]) + role[1..];
}
