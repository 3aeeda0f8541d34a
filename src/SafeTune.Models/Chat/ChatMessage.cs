namespace SafeTune.Models.Chat;

/// <summary>One turn of a conversation.</summary>
/// <param name="Role">The speaker: <c>system</c>, <c>user</c> or <c>assistant</c>.</param>
/// <param name="Content">The text of the turn.</param>
public sealed record ChatMessage(string Role, string Content)
{
    /// <summary>A system message.</summary>
    public static ChatMessage System(string content) => new("system", content);

    /// <summary>A user message.</summary>
    public static ChatMessage User(string content) => new("user", content);

    /// <summary>An assistant message.</summary>
    public static ChatMessage Assistant(string content) => new("assistant", content);
}

/// <summary>A tokenized prompt and response.</summary>
/// <param name="Ids">The prompt tokens followed by the response tokens (end-of-turn included).</param>
/// <param name="PromptLength">How many of <paramref name="Ids"/> belong to the prompt.</param>
public readonly record struct TokenizedChat(int[] Ids, int PromptLength)
{
    /// <summary>The next-token labels for <see cref="Ids"/>, masked on the prompt (see <see cref="ChatTemplate.Labels"/>).</summary>
    public int[] Labels() => ChatTemplate.Labels(Ids, PromptLength);
}
