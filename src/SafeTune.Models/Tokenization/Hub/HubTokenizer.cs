using System.Text.Json;
using SafeTune.Models.Chat.Jinja;

namespace SafeTune.Models.Tokenization.Hub;

/// <summary>
/// A Hub <c>tokenizer.json</c> with a BPE model, run as Hugging Face runs it (transformers.js's tokenizer, the
/// reference the tests compare with): added tokens split out first (<c>lstrip</c>/<c>rstrip</c>, <c>normalized</c>),
/// then the normalizer, the pre-tokenizer, the BPE model, and the post-processor's special tokens; decoding runs the
/// decoder chain, <c>skip_special_tokens</c> and <c>clean_up_tokenization_spaces</c>.
/// </summary>
/// <remarks>
/// Microsoft.ML.Tokenizers 3.0 builds a BPE tokenizer from a vocabulary, merges and one pre-tokenizer regex, but it does
/// not read a tokenizer.json's normalizer, pre-tokenizer chain (Split behaviours, Digits, Punctuation, Metaspace prepend
/// schemes), added-token options, post-processor or decoder chain, and its regexes match UTF-16 units where Hugging Face
/// matches code points. SafeTune therefore runs the tokenizer.json pipeline itself here; Microsoft.ML.Tokenizers stays
/// in use for tiktoken encodings, WordPiece, SentencePiece <c>.model</c> files and <c>vocab.json</c> + <c>merges.txt</c>.
/// </remarks>
internal sealed class HubTokenizer
{
    private readonly HubNormalizer? _normalizer;
    private readonly HubPreTokenizer? _preTokenizer;
    private readonly HubBpe _model;
    private readonly HubPostProcessor? _postProcessor;
    private readonly HubDecoder? _decoder;
    private readonly Dictionary<string, AddedToken> _addedByContent = new(StringComparer.Ordinal);
    private readonly Splitter _unnormalized;
    private readonly Splitter _normalized;
    private readonly HashSet<string> _specialTokens = new(StringComparer.Ordinal);
    private readonly string?[] _vocab;
    private readonly bool _cleanUp;

    private sealed record AddedToken(string Content, int Id, bool Special, bool Normalized, bool LStrip, bool RStrip);

    public HubTokenizer(JsonElement root, string path, JsonElement? tokenizerConfig)
    {
        var json = new HubJson(path);
        if (!root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
            throw json.Error("model", "missing.");
        var modelType = HubJson.Str(model, "type") ?? (model.TryGetProperty("merges", out _) ? "BPE" : null);
        if (modelType != "BPE") throw json.Error("model", $"model type '{modelType ?? "(none)"}' is not a BPE model.");

        _normalizer = HubNormalizer.Create(Get(root, "normalizer"), json);
        _preTokenizer = HubPreTokenizer.Create(Get(root, "pre_tokenizer"), json);
        _model = new HubBpe(model, json);
        _postProcessor = HubPostProcessor.Create(Get(root, "post_processor"), json);

        var ids = new Dictionary<string, int>(_model.TokensToIds, StringComparer.Ordinal);
        var unnormalized = new List<string>();
        var normalized = new List<string>();
        if (root.TryGetProperty("added_tokens", out var added) && added.ValueKind == JsonValueKind.Array)
        {
            var i = 0;
            foreach (var a in added.EnumerateArray())
            {
                var part = $"added_tokens[{i++}]";
                var content = HubJson.Str(a, "content") ?? throw json.Error(part, "needs a \"content\" string.");
                var id = HubJson.Int(a, "id", -1);
                if (id < 0) throw json.Error(part, "needs a non-negative \"id\".");
                var special = HubJson.Bool(a, "special", false);
                var token = new AddedToken(content, id, special, HubJson.Bool(a, "normalized", !special), HubJson.Bool(a, "lstrip", false), HubJson.Bool(a, "rstrip", false));
                ids[content] = id;
                if (special) _specialTokens.Add(content);
                _addedByContent[content] = token;
                if (token.Normalized && _normalizer is not null)
                {
                    var n = _normalizer.Normalize(content);
                    normalized.Add(n);
                    _addedByContent[n] = token;
                }
                else
                {
                    unnormalized.Add(content);
                }
            }
        }
        TokensToIds = ids;
        _vocab = new string?[ids.Count == 0 ? 0 : ids.Values.Max() + 1];
        foreach (var (t, id) in ids) _vocab[id] = t;
        foreach (var (t, id) in _model.TokensToIds) _vocab[id] ??= t;

        _unnormalized = new Splitter(unnormalized);
        _normalized = new Splitter(normalized);
        _decoder = HubDecoder.Create(Get(root, "decoder"), json, _addedByContent.Values.Select(a => a.Content).ToHashSet(StringComparer.Ordinal));

        _cleanUp = true;
        if (tokenizerConfig is { ValueKind: JsonValueKind.Object } config)
        {
            _cleanUp = HubJson.Bool(config, "clean_up_tokenization_spaces", true);
            if (config.TryGetProperty("additional_special_tokens", out var extra) && extra.ValueKind == JsonValueKind.Array)
                foreach (var x in extra.EnumerateArray())
                    if (x.ValueKind == JsonValueKind.String) _specialTokens.Add(x.GetString()!);
                    else if (HubJson.Str(x, "content") is { } c) _specialTokens.Add(c);
        }
    }

    /// <summary>Every token (vocabulary and added tokens) and its id.</summary>
    public IReadOnlyDictionary<string, int> TokensToIds { get; }

    /// <summary>The added tokens marked special, and their ids.</summary>
    public IReadOnlyDictionary<string, int> SpecialTokenIds =>
        _addedByContent.Values.Where(a => a.Special).DistinctBy(a => a.Id).ToDictionary(a => a.Content, a => a.Id, StringComparer.Ordinal);

    /// <summary>The number of ids (one more than the largest).</summary>
    public int Size => _vocab.Length;

    private static JsonElement Get(JsonElement root, string name) => root.TryGetProperty(name, out var e) ? e : default;

    /// <summary>The tokens of <paramref name="text"/>, with the post-processor's special tokens when <paramref name="addSpecialTokens"/>.</summary>
    public List<string> Tokenize(string text, bool addSpecialTokens)
    {
        var tokens = EncodeText(text);
        return _postProcessor is null ? tokens : _postProcessor.Process(tokens, addSpecialTokens);
    }

    /// <summary>The ids of <paramref name="text"/>.</summary>
    public int[] Encode(string text, bool addSpecialTokens) =>
        [.. Tokenize(text, addSpecialTokens).Select(t => _addedByContent.TryGetValue(t, out var a) ? a.Id
            : TokensToIds.TryGetValue(t, out var id) ? id
            : _model.UnkToken is { } unk && TokensToIds.TryGetValue(unk, out var u) ? u
            : throw new InvalidDataException($"token '{t}' has no id and the model has no unknown token."))];

    /// <summary>The token text of an id (null for an id the tokenizer does not have).</summary>
    public string? IdToToken(int id) => id >= 0 && id < _vocab.Length ? _vocab[id] : null;

    /// <summary>Decodes ids to text.</summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens)
    {
        var tokens = ids.Select(i => IdToToken(i) ?? _model.UnkToken).Where(t => t is not null).Select(t => t!).ToList();
        if (skipSpecialTokens) tokens = [.. tokens.Where(t => !_specialTokens.Contains(t))];
        var decoded = _decoder is null ? string.Join(' ', tokens) : string.Concat(_decoder.DecodeChain(tokens));
        if (_decoder is not null && _model.EndOfWordSuffix is { } suffix)
        {
            decoded = decoded.Replace(suffix, " ", StringComparison.Ordinal);
            if (skipSpecialTokens) decoded = JinjaLexer.Trim(decoded);
        }
        return _cleanUp ? CleanUp(decoded) : decoded;
    }

    private static string CleanUp(string text) => text
        .Replace(" .", ".", StringComparison.Ordinal).Replace(" ?", "?", StringComparison.Ordinal)
        .Replace(" !", "!", StringComparison.Ordinal).Replace(" ,", ",", StringComparison.Ordinal)
        .Replace(" ' ", "'", StringComparison.Ordinal).Replace(" n't", "n't", StringComparison.Ordinal)
        .Replace(" 'm", "'m", StringComparison.Ordinal).Replace(" 's", "'s", StringComparison.Ordinal)
        .Replace(" 've", "'ve", StringComparison.Ordinal).Replace(" 're", "'re", StringComparison.Ordinal);

    private List<string> EncodeText(string text)
    {
        var sections = _unnormalized.Split(text);
        Strip(sections);
        var output = new List<string>();
        for (var sectionIndex = 0; sectionIndex < sections.Count; sectionIndex++)
        {
            var section = sections[sectionIndex];
            if (section.Length == 0) continue;
            if (_addedByContent.ContainsKey(section))
            {
                output.Add(section);
                continue;
            }
            var processed = _normalizer is null ? section : _normalizer.Normalize(section);
            if (processed.Length == 0) continue;
            var subsections = _normalized.Split(processed);
            Strip(subsections);
            foreach (var sub in subsections)
            {
                if (sub.Length == 0) continue;
                if (_addedByContent.ContainsKey(sub))
                {
                    output.Add(sub);
                    continue;
                }
                var preTokens = _preTokenizer is null ? [sub] : _preTokenizer.PreTokenize([sub], sectionIndex);
                output.AddRange(_model.Encode(preTokens));
            }
        }
        return output;
    }

    private void Strip(List<string> sections)
    {
        for (var i = 0; i < sections.Count; i++)
        {
            if (!_addedByContent.TryGetValue(sections[i], out var added)) continue;
            if (added.LStrip && i > 0) sections[i - 1] = JinjaLexer.TrimEnd(sections[i - 1]);
            if (added.RStrip && i < sections.Count - 1) sections[i + 1] = JinjaLexer.TrimStart(sections[i + 1]);
        }
    }

    /// <summary>Splits text around the longest added token starting at each position (the reference's trie splitter).</summary>
    private sealed class Splitter
    {
        private sealed class Node
        {
            public Dictionary<char, Node> Next { get; } = [];

            public string? End { get; set; }
        }

        private readonly Node _root = new();

        public Splitter(IEnumerable<string> words)
        {
            foreach (var w in words)
            {
                var node = _root;
                foreach (var c in w)
                {
                    if (!node.Next.TryGetValue(c, out var next)) node.Next[c] = next = new Node();
                    node = next;
                }
                node.End = w;
            }
        }

        public List<string> Split(string text)
        {
            var result = new List<string>();
            if (_root.Next.Count == 0)
            {
                result.Add(text);
                return result;
            }
            int start = 0, i = 0;
            while (i < text.Length)
            {
                var node = _root;
                string? match = null;
                for (var j = i; j < text.Length; j++)
                {
                    if (!node.Next.TryGetValue(text[j], out var next)) break;
                    node = next;
                    if (node.End is not null) match = node.End;
                }
                if (match is not null)
                {
                    if (i > start) result.Add(text[start..i]);
                    result.Add(match);
                    i += match.Length;
                    start = i;
                }
                else
                {
                    i++;
                }
            }
            if (start < text.Length) result.Add(text[start..]);
            return result;
        }
    }
}
