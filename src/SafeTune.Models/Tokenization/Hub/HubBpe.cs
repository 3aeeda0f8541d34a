using System.Text;
using System.Text.Json;

namespace SafeTune.Models.Tokenization.Hub;

/// <summary>
/// The BPE model of a tokenizer.json: merges by rank (leftmost first among equal ranks), <c>ignore_merges</c>,
/// <c>byte_fallback</c> to <c>&lt;0xXX&gt;</c> tokens, <c>unk_token</c> and <c>fuse_unk</c>,
/// <c>continuing_subword_suffix</c> and <c>end_of_word_suffix</c>.
/// </summary>
internal sealed class HubBpe
{
    private readonly Dictionary<(string, string), int> _ranks;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, string[]> _cache = new(StringComparer.Ordinal);
    private readonly bool _byteFallback;
    private readonly bool _ignoreMerges;
    private readonly bool _fuseUnk;
    private readonly string? _endOfWordSuffix;
    private readonly string? _continuingSubwordSuffix;

    public HubBpe(JsonElement model, HubJson json)
    {
        if (!model.TryGetProperty("vocab", out var vocab) || vocab.ValueKind != JsonValueKind.Object)
            throw json.Error("model", "a BPE model needs a \"vocab\" object of token -> id.");
        TokensToIds = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var p in vocab.EnumerateObject())
        {
            if (!p.Value.TryGetInt32(out var id) || id < 0) throw json.Error("model.vocab", $"token '{p.Name}' has no valid id.");
            TokensToIds[p.Name] = id;
        }
        _ranks = [];
        if (!model.TryGetProperty("merges", out var merges) || merges.ValueKind != JsonValueKind.Array)
            throw json.Error("model", "a BPE model needs a \"merges\" array.");
        var rank = 0;
        foreach (var m in merges.EnumerateArray())
        {
            (string, string) pair;
            if (m.ValueKind == JsonValueKind.String)
            {
                var s = m.GetString()!;
                var space = s.IndexOf(' ', StringComparison.Ordinal);
                if (space < 0) throw json.Error("model.merges", $"merge '{s}' is not two tokens separated by a space.");
                var rest = s[(space + 1)..];
                var second = rest.IndexOf(' ', StringComparison.Ordinal);
                pair = (s[..space], second < 0 ? rest : rest[..second]);
            }
            else if (m.ValueKind == JsonValueKind.Array && m.GetArrayLength() == 2 && m[0].ValueKind == JsonValueKind.String && m[1].ValueKind == JsonValueKind.String)
            {
                pair = (m[0].GetString()!, m[1].GetString()!);
            }
            else
            {
                throw json.Error("model.merges", $"malformed merge {m.GetRawText()}.");
            }
            _ranks.TryAdd(pair, rank++);
        }
        UnkToken = HubJson.Str(model, "unk_token");
        _byteFallback = HubJson.Bool(model, "byte_fallback", false);
        _ignoreMerges = HubJson.Bool(model, "ignore_merges", false);
        _fuseUnk = HubJson.Bool(model, "fuse_unk", false);
        _endOfWordSuffix = HubJson.Str(model, "end_of_word_suffix") is { Length: > 0 } eow ? eow : null;
        _continuingSubwordSuffix = HubJson.Str(model, "continuing_subword_suffix") is { Length: > 0 } csw ? csw : null;
    }

    public Dictionary<string, int> TokensToIds { get; }

    public string? UnkToken { get; }

    public string? EndOfWordSuffix => _endOfWordSuffix;

    /// <summary>The model's tokens for a list of pre-tokens.</summary>
    public List<string> Encode(IEnumerable<string> preTokens)
    {
        var output = new List<string>();
        foreach (var token in preTokens)
        {
            if (_ignoreMerges && TokensToIds.ContainsKey(token))
            {
                output.Add(token);
                continue;
            }
            foreach (var t in Bpe(token))
            {
                if (TokensToIds.ContainsKey(t))
                {
                    output.Add(t);
                }
                else if (_byteFallback)
                {
                    var bytes = Encoding.UTF8.GetBytes(t).Select(b => $"<0x{b:X2}>").ToList();
                    if (bytes.All(TokensToIds.ContainsKey)) output.AddRange(bytes);
                    else if (UnkToken is not null) output.Add(UnkToken);
                }
                else if (UnkToken is not null)
                {
                    output.Add(UnkToken);
                }
            }
        }
        if (!_fuseUnk || UnkToken is null) return output;
        var fused = new List<string>(output.Count);
        foreach (var t in output)
            if (!(t == UnkToken && fused.Count > 0 && fused[^1] == UnkToken)) fused.Add(t);
        return fused;
    }

    private string[] Bpe(string token)
    {
        if (token.Length == 0) return [];
        if (_cache.TryGetValue(token, out var cached)) return cached;

        // Symbols are Unicode code points, as in the reference.
        var word = token.EnumerateRunes().Select(r => r.ToString()).ToList();
        if (_endOfWordSuffix is not null) word[^1] += _endOfWordSuffix;
        while (word.Count > 1)
        {
            var best = -1;
            var bestRank = int.MaxValue;
            for (var i = 0; i + 1 < word.Count; i++)
                if (_ranks.TryGetValue((word[i], word[i + 1]), out var r) && r < bestRank)
                {
                    bestRank = r;
                    best = i;
                }
            if (best < 0) break;
            word[best] += word[best + 1];
            word.RemoveAt(best + 1);
        }
        if (_continuingSubwordSuffix is not null)
            for (var i = 0; i < word.Count - 1; i++) word[i] += _continuingSubwordSuffix;
        var result = word.ToArray();
        if (token.Length < 256 && _cache.Count < 10_000) _cache.TryAdd(token, result);
        return result;
    }
}
