using SafeTune.Models.Chat;
using SafeTune.Models.Generation;
using SafeTune.Models.Tokenization;
using SafeTune.Onnx;

namespace SafeTune.Training.Data;

/// <summary>How examples become token rows.</summary>
public sealed record TokenizeOptions
{
    /// <summary>The most tokens an example keeps (prompt and response together).</summary>
    public int MaxLength { get; init; } = 1024;

    /// <summary>
    /// When an example is too long, the response keeps at least this many of its tokens (or all, when it has fewer) and the
    /// prompt loses tokens from its start instead. 0 (the default) keeps the whole prompt whenever it fits and cuts the
    /// response to what is left.
    /// </summary>
    public int ResponseReserve { get; init; }

    /// <summary>
    /// What happens to an example that keeps no response token (its prompt alone fills <see cref="MaxLength"/>): true
    /// (default) leaves it out and lists it in <see cref="TokenizedSet.Dropped"/>; false is an error naming it.
    /// </summary>
    public bool DropExamplesWithoutResponse { get; init; } = true;

    internal void Validate()
    {
        if (MaxLength < 2) throw new UserInputException($"the maximum length must be at least 2 tokens (got {MaxLength}).");
        if (ResponseReserve < 0) throw new UserInputException($"the response reserve must not be negative (got {ResponseReserve}).");
    }
}

/// <summary>One tokenized example: its prompt tokens, then its response tokens (end-of-turn included).</summary>
/// <param name="Example">The example (its id, messages and response text, e.g. for a judge).</param>
/// <param name="Ids">The token ids.</param>
/// <param name="PromptLength">How many of <paramref name="Ids"/> are prompt tokens (everything before the response); at least 1.</param>
/// <param name="Truncated">True when tokens were cut to fit the maximum length.</param>
public sealed record TokenizedExample(SftExample Example, int[] Ids, int PromptLength, bool Truncated)
{
    /// <summary>The example's id (<see cref="SftExample.Id"/>).</summary>
    public string Id => Example.Id;

    /// <summary>The response tokens, which are also the positions the loss counts.</summary>
    public int ResponseTokens => Ids.Length - PromptLength;

    /// <summary>Next-token labels, -100 on the prompt (see <see cref="ChatTemplate.Labels"/>).</summary>
    public int[] Labels() => ChatTemplate.Labels(Ids, PromptLength);
}

/// <summary>The tokenized examples, and those left out.</summary>
/// <param name="Examples">The examples kept, in input order.</param>
/// <param name="Dropped">The ids of examples left out because no response token fit.</param>
/// <param name="TruncatedCount">How many kept examples were cut.</param>
public sealed record TokenizedSet(IReadOnlyList<TokenizedExample> Examples, IReadOnlyList<string> Dropped, int TruncatedCount)
{
    /// <summary>The longest example, in tokens.</summary>
    public int LongestExample => Examples.Count == 0 ? 0 : Examples.Max(e => e.Ids.Length);

    /// <summary>All response tokens (label positions) of the set.</summary>
    public long ResponseTokens => Examples.Sum(e => (long)e.ResponseTokens);
}

/// <summary>Tokenizes fine-tuning examples with a chat template: response-only labels, truncation that keeps the prompt's end.</summary>
public static class SftTokenizer
{
    /// <summary>
    /// Tokenizes every example as <c>template.Tokenize(tokenizer, context, response)</c>. An example longer than
    /// <see cref="TokenizeOptions.MaxLength"/> keeps the end of its prompt (tokens are cut from the prompt's start) and as
    /// much of the response's start as fits; see <see cref="TokenizeOptions.ResponseReserve"/> for how the two share the room.
    /// At least one prompt token always stays, so that every response token has a position predicting it.
    /// </summary>
    /// <exception cref="InvalidDataException">An example keeps no response token and
    /// <see cref="TokenizeOptions.DropExamplesWithoutResponse"/> is false, or every example was dropped.</exception>
    public static TokenizedSet Tokenize(IReadOnlyList<SftExample> examples, TextTokenizer tokenizer, ChatTemplate template, TokenizeOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(template);
        options ??= new TokenizeOptions();
        options.Validate();
        var kept = new List<TokenizedExample>(examples.Count);
        var dropped = new List<string>();
        int truncated = 0;
        long maxChars = (long)options.MaxLength * ContextLength.MaxCharsPerToken;
        foreach (var e in examples)
        {
            long chars = e.Context.Sum(m => (long)m.Content.Length) + e.Response.Length;
            if (chars > maxChars)
                throw new InvalidDataException(
                    $"{e.Location}: the example has {chars:N0} characters, far more than the maximum length of {options.MaxLength} tokens can hold; shorten or remove it");
            var chat = template.Tokenize(tokenizer, e.Context, e.Response);
            var t = Fit(e, chat.Ids, chat.PromptLength, options);
            if (t is null)
            {
                if (!options.DropExamplesWithoutResponse)
                    throw new InvalidDataException(
                        $"{e.Location}: the prompt alone has {chat.PromptLength} tokens, " +
                        $"so no response token fits in the maximum length of {options.MaxLength}");
                dropped.Add(e.Id);
                continue;
            }
            if (t.Truncated) truncated++;
            kept.Add(t);
        }
        if (kept.Count == 0 && examples.Count > 0)
            throw new InvalidDataException($"every example was dropped: no response token fits in the maximum length of {options.MaxLength}");
        return new TokenizedSet(kept, dropped, truncated);
    }

    /// <summary>Cuts one example to the maximum length; null when no response token is left.</summary>
    internal static TokenizedExample? Fit(SftExample example, int[] ids, int promptLength, TokenizeOptions o)
    {
        int p = promptLength, r = ids.Length - promptLength, max = o.MaxLength;
        if (p + r <= max) return p >= 1 && r >= 1 ? new TokenizedExample(example, ids, p, false) : null;
        int keepResponse = Math.Min(r, Math.Max(max - p, Math.Min(r, o.ResponseReserve)));
        keepResponse = Math.Min(keepResponse, max - 1); // at least one prompt token predicts the first response token
        if (keepResponse <= 0) return null;
        int keepPrompt = Math.Min(p, max - keepResponse);
        var cut = new int[keepPrompt + keepResponse];
        Array.Copy(ids, p - keepPrompt, cut, 0, keepPrompt);
        Array.Copy(ids, p, cut, keepPrompt, keepResponse);
        return new TokenizedExample(example, cut, keepPrompt, true);
    }
}
