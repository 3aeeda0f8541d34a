using System.Text;
using System.Text.Json;

namespace SafeTune.Models.Tokenization.Hub;

/// <summary>A tokenizer.json decoder: turns a list of tokens into a list of text pieces that are then joined.</summary>
internal abstract class HubDecoder
{
    public static readonly string[] Supported = ["Sequence", "ByteLevel", "Metaspace", "Replace", "ByteFallback", "Fuse", "Strip", "BPEDecoder"];

    public abstract List<string> DecodeChain(List<string> tokens);

    /// <param name="e">The decoder section.</param>
    /// <param name="json">The file, for error messages.</param>
    /// <param name="addedTokens">Added tokens, which the ByteLevel decoder writes out as they are.</param>
    /// <param name="part">Where in the file.</param>
    public static HubDecoder? Create(JsonElement e, HubJson json, IReadOnlySet<string> addedTokens, string part = "decoder")
    {
        if (e.ValueKind == JsonValueKind.Null || e.ValueKind == JsonValueKind.Undefined) return null;
        var type = json.Type(e, part);
        switch (type)
        {
            case "Sequence":
            {
                if (!e.TryGetProperty("decoders", out var list) || list.ValueKind != JsonValueKind.Array)
                    throw json.Error(part, "a Sequence needs a \"decoders\" array.");
                var items = list.EnumerateArray().Select((x, i) => Create(x, json, addedTokens, $"{part}.decoders[{i}]")).ToList();
                return new Fn(tokens => items.Aggregate(tokens, (acc, d) => d is null ? acc : d.DecodeChain(acc)));
            }
            case "ByteLevel":
                return new Fn(tokens =>
                {
                    var pieces = new List<string>();
                    var current = new StringBuilder();
                    foreach (var t in tokens)
                    {
                        if (addedTokens.Contains(t))
                        {
                            if (current.Length > 0) pieces.Add(ByteLevelAlphabet.Decode(current.ToString()));
                            current.Clear();
                            pieces.Add(t);
                        }
                        else
                        {
                            current.Append(t);
                        }
                    }
                    if (current.Length > 0) pieces.Add(ByteLevelAlphabet.Decode(current.ToString()));
                    return pieces;
                });
            case "Metaspace":
            {
                var replacement = HubJson.Str(e, "replacement") ?? "\u2581";
                return new Fn(tokens => [.. tokens.Select((t, i) =>
                {
                    var n = t.Replace(replacement, " ", StringComparison.Ordinal);
                    return i == 0 && n.StartsWith(' ') ? n[1..] : n;
                })]);
            }
            case "Replace":
            {
                var pattern = json.Pattern(e, part);
                var content = HubJson.Str(e, "content") ?? "";
                return new Fn(tokens => [.. tokens.Select(t => pattern.ReplaceAll(t, content))]);
            }
            case "ByteFallback":
                return new Fn(ByteFallback);
            case "Fuse":
                return new Fn(tokens => [string.Concat(tokens)]);
            case "Strip":
            {
                var content = HubJson.Str(e, "content") ?? "";
                var start = HubJson.Int(e, "start", 0);
                var stop = HubJson.Int(e, "stop", 0);
                return new Fn(tokens => [.. tokens.Select(t => Strip(t, content, start, stop))]);
            }
            case "BPEDecoder":
            {
                var suffix = HubJson.Str(e, "suffix") ?? "";
                return new Fn(tokens => [.. tokens.Select((t, i) => suffix.Length == 0 ? t : t.Replace(suffix, i == tokens.Count - 1 ? "" : " ", StringComparison.Ordinal))]);
            }
            default:
                throw json.Error(part, $"unknown decoder type '{type}' (supported: {string.Join(", ", Supported)}).");
        }
    }

    private static string Strip(string token, string content, int start, int stop)
    {
        // The reference compares single UTF-16 units with the content string.
        var startCut = 0;
        for (var i = 0; i < start && i < token.Length; i++)
        {
            if (token[i].ToString() != content) break;
            startCut = i + 1;
        }
        var stopCut = token.Length;
        for (var i = 0; i < stop; i++)
        {
            var index = token.Length - i - 1;
            if (index < 0 || token[index].ToString() != content) break;
            stopCut = index;
        }
        return stopCut <= startCut ? "" : token[startCut..stopCut];
    }

    private static List<string> ByteFallback(List<string> tokens)
    {
        var result = new List<string>();
        var bytes = new List<byte>();
        foreach (var t in tokens)
        {
            if (t.Length == 6 && t.StartsWith("<0x", StringComparison.Ordinal) && t.EndsWith('>')
                && byte.TryParse(t.AsSpan(3, 2), System.Globalization.NumberStyles.HexNumber, null, out var b))
            {
                bytes.Add(b);
                continue;
            }
            if (bytes.Count > 0) result.Add(DecodeBytes(bytes));
            bytes.Clear();
            result.Add(t);
        }
        if (bytes.Count > 0) result.Add(DecodeBytes(bytes));
        return result;
    }

    /// <summary>UTF-8 with replacement characters, a leading byte-order mark dropped (what a default TextDecoder does).</summary>
    private static string DecodeBytes(List<byte> bytes)
    {
        var span = bytes.ToArray().AsSpan();
        if (span.Length >= 3 && span[0] == 0xEF && span[1] == 0xBB && span[2] == 0xBF) span = span[3..];
        return Encoding.UTF8.GetString(span);
    }

    private sealed class Fn(Func<List<string>, List<string>> f) : HubDecoder
    {
        public override List<string> DecodeChain(List<string> tokens) => f(tokens);
    }
}

/// <summary>A tokenizer.json post-processor: adds special tokens around the encoded tokens.</summary>
internal abstract class HubPostProcessor
{
    public static readonly string[] Supported = ["TemplateProcessing", "ByteLevel", "Sequence", "BertProcessing", "RobertaProcessing"];

    public abstract List<string> Process(List<string> tokens, bool addSpecialTokens);

    public static HubPostProcessor? Create(JsonElement e, HubJson json, string part = "post_processor")
    {
        if (e.ValueKind == JsonValueKind.Null || e.ValueKind == JsonValueKind.Undefined) return null;
        var type = json.Type(e, part);
        switch (type)
        {
            case "TemplateProcessing":
            {
                if (!e.TryGetProperty("single", out var single) || single.ValueKind != JsonValueKind.Array)
                    throw json.Error(part, "TemplateProcessing needs a \"single\" array.");
                var items = new List<string?>(); // null marks the sequence itself
                foreach (var item in single.EnumerateArray())
                {
                    if (item.TryGetProperty("SpecialToken", out var st)) items.Add(HubJson.Str(st, "id") ?? throw json.Error(part, "a SpecialToken needs an \"id\"."));
                    else if (item.TryGetProperty("Sequence", out var seq) && HubJson.Str(seq, "id") == "A") items.Add(null);
                }
                return new Fn((tokens, add) =>
                {
                    var result = new List<string>();
                    foreach (var item in items)
                    {
                        if (item is null) result.AddRange(tokens);
                        else if (add) result.Add(item);
                    }
                    return result;
                });
            }
            case "ByteLevel":
                return new Fn((tokens, _) => tokens);
            case "Sequence":
            {
                if (!e.TryGetProperty("processors", out var list) || list.ValueKind != JsonValueKind.Array)
                    throw json.Error(part, "a Sequence needs a \"processors\" array.");
                var items = list.EnumerateArray().Select((x, i) => Create(x, json, $"{part}.processors[{i}]")).ToList();
                return new Fn((tokens, add) => items.Aggregate(tokens, (acc, p) => p is null ? acc : p.Process(acc, add)));
            }
            case "BertProcessing" or "RobertaProcessing":
            {
                string Token(string name) => e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Array && v.GetArrayLength() > 0
                    && v[0].ValueKind == JsonValueKind.String ? v[0].GetString()! : throw json.Error(part, $"{type} needs \"{name}\": [token, id].");
                var cls = Token("cls");
                var sep = Token("sep");
                return new Fn((tokens, add) => add ? [cls, .. tokens, sep] : tokens);
            }
            default:
                throw json.Error(part, $"unknown post-processor type '{type}' (supported: {string.Join(", ", Supported)}).");
        }
    }

    private sealed class Fn(Func<List<string>, bool, List<string>> f) : HubPostProcessor
    {
        public override List<string> Process(List<string> tokens, bool addSpecialTokens) => f(tokens, addSpecialTokens);
    }
}
