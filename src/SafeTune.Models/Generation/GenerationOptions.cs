using SafeTune.Onnx;

namespace SafeTune.Models.Generation;

/// <summary>How <see cref="Generator.Generate"/> picks and stops tokens.</summary>
public sealed record GenerationOptions
{
    /// <summary>The most tokens generated per prompt.</summary>
    public int MaxNewTokens { get; init; } = 32;

    /// <summary>Softmax temperature; 0 picks the most likely token (greedy).</summary>
    public float Temperature { get; init; }

    /// <summary>Nucleus sampling: only the most likely tokens whose probabilities sum to at least this are drawn from (1 = all).</summary>
    public float TopP { get; init; } = 1f;

    /// <summary>Seed of the sampler; the same seed, prompts and options give the same tokens.</summary>
    public int Seed { get; init; }

    /// <summary>Tokens that end a sequence; the end token is kept as the last generated token.</summary>
    public IReadOnlyCollection<int> EosTokenIds { get; init; } = [];

    /// <summary>Token sequences that end a sequence when the generated tokens end with one (the sequence is kept).</summary>
    public IReadOnlyList<int[]> StopSequences { get; init; } = [];

    /// <summary>Called with a row's generated tokens after each new token; returning true ends that row.</summary>
    public Func<int[], bool>? StopPredicate { get; init; }

    /// <summary>
    /// Called with the prompt's index and each token as it is chosen (end-of-sequence tokens included), before the
    /// stop checks; for streaming output.
    /// </summary>
    public Action<int, int>? OnToken { get; init; }

    /// <summary>The token placed in padding positions (masked out, so its value does not matter).</summary>
    public int PadTokenId { get; init; }

    internal void Validate()
    {
        if (MaxNewTokens < 0) throw new UserInputException($"max new tokens must not be negative (got {MaxNewTokens}).");
        if (!(Temperature >= 0) || float.IsInfinity(Temperature)) throw new UserInputException($"temperature must be finite and at least 0 (got {Temperature}).");
        if (!(TopP > 0 && TopP <= 1)) throw new UserInputException($"top-p must be in (0, 1] (got {TopP}).");
        if (StopSequences.Any(s => s is null || s.Length == 0)) throw new UserInputException("stop sequences must not be empty.");
    }
}

/// <summary>Why a row stopped.</summary>
public enum FinishReason
{
    /// <summary><see cref="GenerationOptions.MaxNewTokens"/> tokens were generated.</summary>
    MaxNewTokens,
    /// <summary>An end token (<see cref="GenerationOptions.EosTokenIds"/>) was generated.</summary>
    EndOfSequence,
    /// <summary>The generated tokens ended with one of <see cref="GenerationOptions.StopSequences"/>.</summary>
    StopSequence,
    /// <summary><see cref="GenerationOptions.StopPredicate"/> returned true.</summary>
    StopPredicate,
}

/// <summary>The tokens generated for one prompt (the prompt not included) and why generation stopped.</summary>
/// <param name="Tokens">The generated token ids.</param>
/// <param name="Reason">Why the row stopped.</param>
public sealed record GeneratedSequence(int[] Tokens, FinishReason Reason);
