using SafeTune.Models.Tokenization;
using SafeTune.Onnx;
using SafeTune.Runtime.Training;

namespace SafeTune.Safety.Critics.Local;

/// <summary>One (prompt, response) pair as BERT reads it.</summary>
/// <param name="Ids">Token ids: <c>[CLS] prompt [SEP] response [SEP]</c>.</param>
/// <param name="TypeIds">Segment ids: 0 for <c>[CLS]</c>, the prompt and its <c>[SEP]</c>; 1 for the response and the final <c>[SEP]</c>.</param>
/// <param name="PromptTokens">Prompt tokens kept.</param>
/// <param name="ResponseTokens">Response tokens kept.</param>
/// <param name="Truncated">True when tokens were dropped to fit the maximum length.</param>
public sealed record EncodedPair(long[] Ids, long[] TypeIds, int PromptTokens, int ResponseTokens, bool Truncated);

/// <summary>
/// Encodes (prompt, response) pairs for the local classifier judge: lower-cased WordPiece (the MiniLM vocabulary),
/// <c>[CLS] prompt [SEP] response [SEP]</c> with segment ids 0/1, at most <see cref="MaxLength"/> tokens. When the pair is
/// too long, both parts keep their first tokens: the response keeps as many as fit after the whole prompt, but at least
/// half of the room, and the prompt gets the rest. The start of a response (a refusal or an affirmative opening) is what
/// decides the verdict most often, so it is never cut away by a long prompt.
/// </summary>
public sealed class JudgePairEncoder
{
    private readonly TextTokenizer _tokenizer;
    private readonly long _cls, _sep, _pad;

    /// <summary>Creates an encoder over a WordPiece tokenizer (such as one loaded from MiniLM's <c>vocab.txt</c>).</summary>
    /// <exception cref="UserInputException">The tokenizer is not WordPiece, or <paramref name="maxLength"/> is below 8 or above 512.</exception>
    public JudgePairEncoder(TextTokenizer tokenizer, int maxLength)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (tokenizer.Kind != TokenizerKind.WordPiece)
            throw new UserInputException($"the local judge needs a WordPiece (BERT) tokenizer, not {tokenizer.Kind} ({tokenizer.Source}).");
        if (maxLength is < 8 or > Pretrained.MiniLmPackage.MaxPositions)
            throw new UserInputException($"the judge's maximum length must lie in [8, {Pretrained.MiniLmPackage.MaxPositions}], not {maxLength}.");
        _tokenizer = tokenizer;
        MaxLength = maxLength;
        _cls = tokenizer.TokenToId("[CLS]") ?? throw new UserInputException($"{tokenizer.Source}: the vocabulary lacks [CLS].");
        _sep = tokenizer.TokenToId("[SEP]") ?? throw new UserInputException($"{tokenizer.Source}: the vocabulary lacks [SEP].");
        _pad = tokenizer.TokenToId("[PAD]") ?? throw new UserInputException($"{tokenizer.Source}: the vocabulary lacks [PAD].");
    }

    /// <summary>Loads the lower-cased WordPiece tokenizer from a <c>vocab.txt</c> and creates the encoder.</summary>
    public static JudgePairEncoder FromVocab(string vocabPath, int maxLength) =>
        new(TokenizerLoader.Load(vocabPath, new TokenizerLoadOptions { LowerCase = true, ReadConfigFiles = false }), maxLength);

    /// <summary>The longest encoding, special tokens included.</summary>
    public int MaxLength { get; }

    /// <summary>The padding id (<c>[PAD]</c>).</summary>
    public long PadId => _pad;

    /// <summary>Encodes one pair.</summary>
    public EncodedPair Encode(string prompt, string response)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentNullException.ThrowIfNull(response);
        var p = _tokenizer.Encode(prompt);
        var r = _tokenizer.Encode(response);
        int room = MaxLength - 3;
        int keepP = p.Length, keepR = r.Length;
        bool truncated = keepP + keepR > room;
        if (truncated)
        {
            keepR = Math.Min(r.Length, Math.Max(room - p.Length, room / 2));
            keepP = room - keepR;
        }
        int n = keepP + keepR + 3;
        var ids = new long[n];
        var types = new long[n];
        int k = 0;
        ids[k++] = _cls;
        for (int i = 0; i < keepP; i++) ids[k++] = p[i];
        ids[k++] = _sep;
        for (int i = 0; i < keepR; i++) { types[k] = 1; ids[k++] = r[i]; }
        types[k] = 1;
        ids[k] = _sep;
        return new EncodedPair(ids, types, keepP, keepR, truncated);
    }

    /// <summary>
    /// Pads <paramref name="pairs"/> on the right to the longest one and returns the batch (ids, mask, segment ids);
    /// <paramref name="labels"/> (one per row, or null for none: every row then gets -100) become the batch's labels.
    /// </summary>
    public TokenBatch Batch(IReadOnlyList<EncodedPair> pairs, IReadOnlyList<long>? labels = null)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        if (pairs.Count == 0) throw new UserInputException("a batch needs at least one pair.");
        if (labels is not null && labels.Count != pairs.Count) throw new UserInputException($"{labels.Count} labels for {pairs.Count} pairs.");
        int b = pairs.Count, t = pairs.Max(x => x.Ids.Length);
        var ids = new long[b * t];
        var mask = new long[b * t];
        var types = new long[b * t];
        for (int row = 0; row < b; row++)
        {
            var e = pairs[row];
            for (int j = 0; j < t; j++)
            {
                bool real = j < e.Ids.Length;
                ids[row * t + j] = real ? e.Ids[j] : _pad;
                mask[row * t + j] = real ? 1 : 0;
                types[row * t + j] = real ? e.TypeIds[j] : 0;
            }
        }
        var rowLabels = labels is null ? Enumerable.Repeat(Autodiff.Losses.LossNames.IgnoreIndex, b).ToArray() : [.. labels];
        return new TokenBatch(ids, rowLabels, mask, b, t) { TokenTypeIds = types };
    }
}
