namespace SafeTune.Serving;

/// <summary>One message of a chat request.</summary>
/// <param name="Role"><c>system</c>, <c>user</c> or <c>assistant</c>.</param>
/// <param name="Content">The message text.</param>
public sealed record ChatTurn(string Role, string Content);

/// <summary>A chat completion request, as read from the OpenAI wire format.</summary>
public sealed record ChatCompletionRequest
{
    /// <summary>The model the client asked for (informational; a server serves one model).</summary>
    public string? Model { get; init; }

    /// <summary>The conversation, oldest first.</summary>
    public required IReadOnlyList<ChatTurn> Messages { get; init; }

    /// <summary>The most tokens to generate (<c>max_tokens</c> or <c>max_completion_tokens</c>); null for the server's default.</summary>
    public int? MaxTokens { get; init; }

    /// <summary>Sampling temperature; 0 is greedy; null for the server's default.</summary>
    public double? Temperature { get; init; }

    /// <summary>Nucleus sampling mass; null for 1.</summary>
    public double? TopP { get; init; }

    /// <summary>Texts that end the completion; the completion is cut before the first one found.</summary>
    public IReadOnlyList<string> Stop { get; init; } = [];

    /// <summary>The sampling seed; null for 0.</summary>
    public int? Seed { get; init; }
}

/// <summary>Why a completion ended, in OpenAI's words.</summary>
public enum ChatFinishReason
{
    /// <summary>An end-of-turn token or a stop text (<c>stop</c>).</summary>
    Stop,
    /// <summary>The token limit (<c>length</c>).</summary>
    Length,
}

/// <summary>What one chat request produced: the reply, why it stopped and the tokens it used.</summary>
/// <param name="Content">The assistant's text.</param>
/// <param name="FinishReason">Why it ended.</param>
/// <param name="PromptTokens">Tokens in the rendered prompt (0 when the backend does not tokenize).</param>
/// <param name="CompletionTokens">Tokens generated (0 when the backend does not tokenize).</param>
public sealed record ChatCompletionResult(string Content, ChatFinishReason FinishReason, int PromptTokens, int CompletionTokens);

/// <summary>What a <see cref="ChatServer"/> serves: a model that completes chats, or a judge that scores them.</summary>
public interface IChatBackend : IDisposable
{
    /// <summary>The model name reported by <c>GET /v1/models</c> and in completions.</summary>
    string ModelId { get; }

    /// <summary>Completes <paramref name="request"/>; throws <see cref="ChatRequestException"/> for requests it cannot serve.</summary>
    Task<ChatCompletionResult> CompleteAsync(ChatCompletionRequest request, CancellationToken cancellationToken);
}

/// <summary>A request the backend cannot serve; the server answers with <see cref="Status"/> and the message.</summary>
/// <param name="status">The HTTP status: 400 for a bad request, 500 or 503 for a failure of the backend.</param>
/// <param name="message">What is wrong, in one line.</param>
public sealed class ChatRequestException(int status, string message) : Exception(message)
{
    /// <summary>The HTTP status to answer with.</summary>
    public int Status { get; } = status;
}
