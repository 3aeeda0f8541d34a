using System.Text;
using System.Text.Json;

namespace SafeTune.Models.Tokenization.Hub;

/// <summary>Reads the parts of a tokenizer.json; every error names the file and the part.</summary>
internal sealed class HubJson(string path)
{
    public string Path { get; } = path;

    public InvalidDataException Error(string part, string detail) => new($"'{Path}': {part}: {detail}");

    public string Type(JsonElement e, string part)
    {
        if (e.ValueKind != JsonValueKind.Object || !e.TryGetProperty("type", out var t) || t.ValueKind != JsonValueKind.String)
            throw Error(part, "expected an object with a \"type\".");
        return t.GetString()!;
    }

    public static string? Str(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    public static bool Bool(JsonElement e, string name, bool fallback) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False
            ? v.GetBoolean()
            : fallback;

    public static int Int(JsonElement e, string name, int fallback) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.TryGetInt32(out var i) ? i : fallback;

    /// <summary>A <c>pattern</c> object: <c>{"String": s}</c> (literal) or <c>{"Regex": r}</c>.</summary>
    public JsRegex Pattern(JsonElement e, string part)
    {
        if (e.ValueKind != JsonValueKind.Object || !e.TryGetProperty("pattern", out var p) || p.ValueKind != JsonValueKind.Object)
            throw Error(part, "expected a \"pattern\" object.");
        try
        {
            if (Str(p, "String") is { } s) return new JsRegex(System.Text.RegularExpressions.Regex.Escape(s));
            if (Str(p, "Regex") is { } r) return new JsRegex(JsRegex.FromOniguruma(r));
        }
        catch (ArgumentException ex)
        {
            throw Error(part, $"the pattern is not a regular expression SafeTune can run: {ex.Message}");
        }
        throw Error(part, "the pattern must be {\"String\": ...} or {\"Regex\": ...}.");
    }
}

// ---- normalizers ------------------------------------------------------------------------------------------------

/// <summary>A tokenizer.json normalizer.</summary>
internal abstract class HubNormalizer
{
    public abstract string Normalize(string text);

    public static readonly string[] Supported = ["Sequence", "Prepend", "Replace", "Lowercase", "Strip", "StripAccents", "NFC", "NFD", "NFKC", "NFKD"];

    public static HubNormalizer? Create(JsonElement e, HubJson json, string part = "normalizer")
    {
        if (e.ValueKind == JsonValueKind.Null || e.ValueKind == JsonValueKind.Undefined) return null;
        var type = json.Type(e, part);
        switch (type)
        {
            case "Sequence":
            {
                if (!e.TryGetProperty("normalizers", out var list) || list.ValueKind != JsonValueKind.Array)
                    throw json.Error(part, "a Sequence needs a \"normalizers\" array.");
                var items = list.EnumerateArray().Select((x, i) => Create(x, json, $"{part}.normalizers[{i}]")).ToList();
                return new Fn(t => items.Aggregate(t, (acc, n) => n is null ? acc : n.Normalize(acc)));
            }
            case "Prepend":
            {
                var prepend = HubJson.Str(e, "prepend") ?? throw json.Error(part, "Prepend needs a \"prepend\" string.");
                return new Fn(t => prepend + t);
            }
            case "Replace":
            {
                var pattern = json.Pattern(e, part);
                var content = HubJson.Str(e, "content") ?? "";
                return new Fn(t => pattern.ReplaceAll(t, content));
            }
            case "Lowercase":
                return new Fn(t => t.ToLowerInvariant());
            case "Strip":
            {
                var left = HubJson.Bool(e, "strip_left", false);
                var right = HubJson.Bool(e, "strip_right", false);
                return new Fn(t =>
                {
                    if (left) t = Chat.Jinja.JinjaLexer.TrimStart(t);
                    if (right) t = Chat.Jinja.JinjaLexer.TrimEnd(t);
                    return t;
                });
            }
            case "StripAccents":
                return new Fn(t => string.Concat(t.EnumerateRunes().Where(r => Rune.GetUnicodeCategory(r) is not (
                    System.Globalization.UnicodeCategory.NonSpacingMark or System.Globalization.UnicodeCategory.SpacingCombiningMark
                    or System.Globalization.UnicodeCategory.EnclosingMark)).Select(r => r.ToString())));
            case "NFC" or "NFD" or "NFKC" or "NFKD":
            {
                // ICU4N's managed normalizers: string.Normalize is the identity under the repository's InvariantGlobalization.
                var normalizer = type switch
                {
                    "NFC" => ICU4N.Text.Normalizer2.NFCInstance,
                    "NFD" => ICU4N.Text.Normalizer2.NFDInstance,
                    "NFKC" => ICU4N.Text.Normalizer2.NFKCInstance,
                    _ => ICU4N.Text.Normalizer2.NFKDInstance,
                };
                return new Fn(t => normalizer.Normalize(t));
            }
            default:
                throw json.Error(part, $"unknown normalizer type '{type}' (supported: {string.Join(", ", Supported)}).");
        }
    }

    private sealed class Fn(Func<string, string> f) : HubNormalizer
    {
        public override string Normalize(string text) => f(text);
    }
}

// ---- pre-tokenizers ---------------------------------------------------------------------------------------------

/// <summary>A tokenizer.json pre-tokenizer: splits one piece of text into pre-tokens.</summary>
internal abstract class HubPreTokenizer
{
    public static readonly string[] Supported = ["Sequence", "ByteLevel", "Split", "Digits", "Punctuation", "Metaspace", "Whitespace", "WhitespaceSplit"];

    /// <summary>GPT-2's pattern with JavaScript's <c>\s</c>, as the reference's ByteLevel pre-tokenizer writes it.</summary>
    private static readonly Lazy<JsRegex> Gpt2 = new(() => new JsRegex(
        $@"'s|'t|'re|'ve|'m|'ll|'d| ?\p{{L}}+| ?\p{{N}}+| ?[^{JsRegex.JsWhitespace}\p{{L}}\p{{N}}]+|[{JsRegex.JsWhitespace}]+(?![^{JsRegex.JsWhitespace}])|[{JsRegex.JsWhitespace}]+"));

    private const string PunctuationClass = @"\p{P}\u0021-\u002F\u003A-\u0040\u005B-\u0060\u007B-\u007E";

    private static readonly Lazy<JsRegex> PunctuationPattern = new(() => new JsRegex($"[^{PunctuationClass}]+|[{PunctuationClass}]+"));

    public abstract IEnumerable<string> PreTokenize(string text, int sectionIndex);

    public List<string> PreTokenize(IEnumerable<string> pieces, int sectionIndex) => [.. pieces.SelectMany(p => PreTokenize(p, sectionIndex))];

    public static HubPreTokenizer? Create(JsonElement e, HubJson json, string part = "pre_tokenizer")
    {
        if (e.ValueKind == JsonValueKind.Null || e.ValueKind == JsonValueKind.Undefined) return null;
        var type = json.Type(e, part);
        switch (type)
        {
            case "Sequence":
            {
                if (!e.TryGetProperty("pretokenizers", out var list) || list.ValueKind != JsonValueKind.Array)
                    throw json.Error(part, "a Sequence needs a \"pretokenizers\" array.");
                var items = list.EnumerateArray().Select((x, i) => Create(x, json, $"{part}.pretokenizers[{i}]")).ToList();
                return new Fn((t, s) => items.Aggregate((IEnumerable<string>)[t], (acc, p) => p is null ? acc : p.PreTokenize(acc, s)));
            }
            case "ByteLevel":
            {
                var addPrefixSpace = HubJson.Bool(e, "add_prefix_space", false);
                var useRegex = HubJson.Bool(e, "use_regex", true);
                return new Fn((t, _) =>
                {
                    if (addPrefixSpace && !t.StartsWith(' ')) t = " " + t;
                    var pieces = useRegex ? Gpt2.Value.MatchAll(t) : [t];
                    return pieces.Select(ByteLevelAlphabet.Encode);
                });
            }
            case "Split":
            {
                var regex = json.Pattern(e, part);
                var invert = HubJson.Bool(e, "invert", false);
                var behavior = HubJson.Str(e, "behavior")?.ToLowerInvariant();
                return new Fn((t, _) =>
                {
                    if (invert) return regex.MatchAll(t).Where(x => x.Length > 0);
                    if (behavior == "removed") return regex.SplitRemoved(t).Where(x => x.Length > 0);
                    // The reference isolates the matches whatever the behaviour says.
                    return regex.SplitIsolated(t);
                });
            }
            case "Digits":
            {
                var individual = HubJson.Bool(e, "individual_digits", false);
                var regex = new JsRegex(individual ? "[^0-9]+|[0-9]" : "[^0-9]+|[0-9]+");
                return new Fn((t, _) => regex.MatchAll(t));
            }
            case "Punctuation":
                return new Fn((t, _) => PunctuationPattern.Value.MatchAll(t));
            case "Metaspace":
            {
                var replacement = HubJson.Str(e, "replacement") ?? "\u2581";
                var strRep = HubJson.Str(e, "str_rep") is { Length: > 0 } sr ? sr : replacement;
                var scheme = HubJson.Str(e, "prepend_scheme") ?? "always";
                return new Fn((t, section) =>
                {
                    var normalized = t.Replace(" ", strRep, StringComparison.Ordinal);
                    if (!normalized.StartsWith(replacement, StringComparison.Ordinal) && (scheme == "always" || (scheme == "first" && section == 0)))
                        normalized = strRep + normalized;
                    return [normalized];
                });
            }
            case "Whitespace":
            {
                var regex = new JsRegex(@"[A-Za-z0-9_]+|[^A-Za-z0-9_" + JsRegex.JsWhitespace + "]+");
                return new Fn((t, _) => regex.MatchAll(t));
            }
            case "WhitespaceSplit":
            {
                var regex = new JsRegex("[^" + JsRegex.JsWhitespace + "]+");
                return new Fn((t, _) => regex.MatchAll(t));
            }
            default:
                throw json.Error(part, $"unknown pre-tokenizer type '{type}' (supported: {string.Join(", ", Supported)}).");
        }
    }

    private sealed class Fn(Func<string, int, IEnumerable<string>> f) : HubPreTokenizer
    {
        public override IEnumerable<string> PreTokenize(string text, int sectionIndex) => f(text, sectionIndex);
    }
}

/// <summary>GPT-2's reversible map between bytes and printable characters.</summary>
internal static class ByteLevelAlphabet
{
    private static readonly char[] ByteToChar = Build();
    private static readonly Dictionary<char, byte> CharToByte = ByteToChar.Select((c, b) => (c, (byte)b)).ToDictionary(x => x.c, x => x.Item2);

    private static char[] Build()
    {
        var bs = new List<int>();
        for (var b = '!'; b <= '~'; b++) bs.Add(b);
        for (var b = 0xA1; b <= 0xAC; b++) bs.Add(b);
        for (var b = 0xAE; b <= 0xFF; b++) bs.Add(b);
        var map = new char[256];
        foreach (var b in bs) map[b] = (char)b;
        var n = 0;
        for (var b = 0; b < 256; b++)
            if (!bs.Contains(b)) map[b] = (char)(256 + n++);
        return map;
    }

    public static string Encode(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        var chars = new char[bytes.Length];
        for (var i = 0; i < bytes.Length; i++) chars[i] = ByteToChar[bytes[i]];
        return new string(chars);
    }

    /// <summary>Back to text; a character outside the alphabet counts as byte 0, as in the reference.</summary>
    public static string Decode(string text)
    {
        var bytes = new List<byte>(text.Length);
        foreach (var r in text.EnumerateRunes())
            bytes.Add(r.IsBmp && CharToByte.TryGetValue((char)r.Value, out var b) ? b : (byte)0);
        return Encoding.UTF8.GetString([.. bytes]);
    }
}
