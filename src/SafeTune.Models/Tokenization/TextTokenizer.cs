using Microsoft.ML.Tokenizers;
using SafeTune.Models.Tokenization.Hub;

namespace SafeTune.Models.Tokenization;

/// <summary>
/// A loaded text tokenizer: a <see cref="Microsoft.ML.Tokenizers.Tokenizer"/> together with its vocabulary size and its
/// special tokens (beginning/end of sequence, padding). Create one with <see cref="TokenizerLoader.Load(string, TokenizerLoadOptions?)"/>.
/// </summary>
public sealed class TextTokenizer
{
    private readonly IReadOnlyDictionary<string, int> _tokenIds;
    private readonly Dictionary<int, string> _specialById;

    private Dictionary<int, string>? _tokenById;

    internal TextTokenizer(HubTokenizer hub, TokenizerKind kind, string source, IReadOnlyDictionary<string, int> specialTokens, SpecialTokenSet special)
        : this(null, kind, source, hub.Size, hub.TokensToIds, specialTokens, special)
    {
        Hub = hub;
    }

    internal TextTokenizer(
        Tokenizer? inner,
        TokenizerKind kind,
        string source,
        int vocabularySize,
        IReadOnlyDictionary<string, int> tokenIds,
        IReadOnlyDictionary<string, int> specialTokens,
        SpecialTokenSet special)
    {
        Inner = inner;
        Kind = kind;
        Source = source;
        VocabularySize = vocabularySize;
        _tokenIds = tokenIds;
        SpecialTokens = specialTokens;
        _specialById = new Dictionary<int, string>();
        foreach (var (token, id) in specialTokens) _specialById.TryAdd(id, token);

        (BosToken, BosId) = Resolve(special.BosToken, special.BosId);
        (EosToken, EosId) = Resolve(special.EosToken, special.EosId);
        (PadToken, PadId) = Resolve(special.PadToken, special.PadId);

        var stops = new List<int>();
        if (EosId is int eos) stops.Add(eos);
        foreach (var id in special.ExtraEosIds)
            if (!stops.Contains(id)) stops.Add(id);
        StopIds = stops;
    }

    /// <summary>
    /// The underlying Microsoft.ML.Tokenizers tokenizer; <see langword="null"/> for a Hub <c>tokenizer.json</c> BPE, which
    /// SafeTune runs itself (see <c>Tokenization/Hub/README.md</c>).
    /// </summary>
    public Tokenizer? Inner { get; }

    /// <summary>The Hub tokenizer.json pipeline, when this tokenizer came from one.</summary>
    internal HubTokenizer? Hub { get; }

    /// <summary>The tokenization algorithm.</summary>
    public TokenizerKind Kind { get; }

    /// <summary>Where the tokenizer came from: a file path or a tiktoken encoding name.</summary>
    public string Source { get; }

    /// <summary>The number of token ids (one more than the largest id, special tokens included).</summary>
    public int VocabularySize { get; }

    /// <summary>The special (added) tokens and their ids.</summary>
    public IReadOnlyDictionary<string, int> SpecialTokens { get; }

    /// <summary>The beginning-of-sequence token, if known.</summary>
    public string? BosToken { get; }

    /// <summary>The beginning-of-sequence token id, if known.</summary>
    public int? BosId { get; }

    /// <summary>The end-of-sequence token, if known.</summary>
    public string? EosToken { get; }

    /// <summary>The end-of-sequence token id, if known.</summary>
    public int? EosId { get; }

    /// <summary>The padding token, if known.</summary>
    public string? PadToken { get; }

    /// <summary>The padding token id, if known.</summary>
    public int? PadId { get; }

    /// <summary>
    /// The ids that end generation: <see cref="EosId"/> first, then any further end-of-sequence ids listed in
    /// <c>generation_config.json</c>.
    /// </summary>
    public IReadOnlyList<int> StopIds { get; }

    /// <summary>
    /// Encodes <paramref name="text"/> to token ids. Special tokens written in the text (such as <c>&lt;|im_start|&gt;</c>)
    /// become their single ids. No tokens are added unless <paramref name="addSpecialTokens"/> is set: then a Hub
    /// tokenizer.json adds what its post-processor says (Hugging Face's <c>add_special_tokens=True</c>), WordPiece
    /// wraps the ids in <c>[CLS]</c> … <c>[SEP]</c> and the other kinds prepend <see cref="BosId"/> when there is one.
    /// </summary>
    public int[] Encode(string text, bool addSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (Hub is not null) return Hub.Encode(text, addSpecialTokens);
        IReadOnlyList<int> ids = Inner switch
        {
            BertTokenizer bert => bert.EncodeToIds(bert.RemoveNonSpacingMarks ? AccentFolding.Fold(text) : text, addSpecialTokens,
                considerPreTokenization: true, considerNormalization: true),
            SentencePieceTokenizer sp => sp.EncodeToIds(text, addBeginningOfSentence: addSpecialTokens, addEndOfSentence: false, considerPreTokenization: true, considerNormalization: true),
            _ => Inner!.EncodeToIds(text),
        };
        if (addSpecialTokens && Inner is not (BertTokenizer or SentencePieceTokenizer) && BosId is int bos && (ids.Count == 0 || ids[0] != bos))
        {
            var withBos = new int[ids.Count + 1];
            withBos[0] = bos;
            for (var i = 0; i < ids.Count; i++) withBos[i + 1] = ids[i];
            return withBos;
        }
        return [.. ids];
    }

    /// <summary>Decodes token ids back to text (special tokens are written out as their text).</summary>
    public string Decode(IEnumerable<int> ids) => Decode(ids, skipSpecialTokens: false);

    /// <summary>
    /// Decodes token ids back to text. With <paramref name="skipSpecialTokens"/> the special tokens are left out
    /// (Hugging Face's <c>skip_special_tokens=True</c>); otherwise they are written out as their text.
    /// </summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens)
    {
        ArgumentNullException.ThrowIfNull(ids);
        if (Hub is not null) return Hub.Decode(ids, skipSpecialTokens);
        if (skipSpecialTokens) ids = ids.Where(id => !IsSpecial(id));
        return Inner switch
        {
            BpeTokenizer bpe => bpe.Decode(ids, considerSpecialTokens: true),
            SentencePieceTokenizer sp => sp.Decode(ids, considerSpecialTokens: true),
            WordPieceTokenizer wp => wp.Decode(ids, skipSpecialTokens: false),
            _ => Inner!.Decode(ids),
        } ?? string.Empty;
    }

    /// <summary>The token text of <paramref name="id"/> (a vocabulary entry or a special token), or <see langword="null"/>.</summary>
    public string? IdToToken(int id)
    {
        if (Hub is not null) return Hub.IdToToken(id);
        if (_specialById.TryGetValue(id, out var special)) return special;
        _tokenById ??= _tokenIds.GroupBy(kv => kv.Value).ToDictionary(g => g.Key, g => g.First().Key);
        return _tokenById.TryGetValue(id, out var token) ? token : null;
    }

    /// <summary>The id of a whole token (a vocabulary entry or a special token), or <see langword="null"/> if there is none.</summary>
    public int? TokenToId(string token)
    {
        ArgumentNullException.ThrowIfNull(token);
        if (SpecialTokens.TryGetValue(token, out var s)) return s;
        return _tokenIds.TryGetValue(token, out var id) ? id : null;
    }

    /// <summary>Whether <paramref name="id"/> is a special (added) token.</summary>
    public bool IsSpecial(int id) => _specialById.ContainsKey(id);

    /// <inheritdoc/>
    public override string ToString() => $"{Kind} tokenizer ({VocabularySize} ids) from {Source}";

    private (string? Token, int? Id) Resolve(string? token, int? id)
    {
        if (token is not null) return (token, TokenToId(token) ?? id);
        if (id is int i)
        {
            if (_specialById.TryGetValue(i, out var s)) return (s, i);
            foreach (var (t, tid) in _tokenIds)
                if (tid == i) return (t, i);
            return (null, i);
        }
        return (null, null);
    }
}

/// <summary>Special tokens gathered from the tokenizer files and the config files beside them.</summary>
internal sealed class SpecialTokenSet
{
    public string? BosToken { get; set; }
    public int? BosId { get; set; }
    public string? EosToken { get; set; }
    public int? EosId { get; set; }
    public string? PadToken { get; set; }
    public int? PadId { get; set; }
    public List<int> ExtraEosIds { get; } = [];
}
