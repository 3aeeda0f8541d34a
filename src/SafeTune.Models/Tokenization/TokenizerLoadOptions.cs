namespace SafeTune.Models.Tokenization;

/// <summary>Options for <see cref="TokenizerLoader.Load(string, TokenizerLoadOptions?)"/>.</summary>
public sealed record TokenizerLoadOptions
{
    /// <summary>
    /// Whether a WordPiece (<c>vocab.txt</c>) tokenizer lower-cases its input. <see langword="null"/> (the default) takes
    /// <c>do_lower_case</c> from a <c>tokenizer_config.json</c> beside the vocabulary, or <see langword="true"/> without one.
    /// </summary>
    public bool? LowerCase { get; init; }

    /// <summary>Whether to read <c>tokenizer_config.json</c> and <c>generation_config.json</c> beside the tokenizer file (default true).</summary>
    public bool ReadConfigFiles { get; init; } = true;
}
