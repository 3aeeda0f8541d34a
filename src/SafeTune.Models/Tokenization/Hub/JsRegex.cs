using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace SafeTune.Models.Tokenization.Hub;

/// <summary>
/// Regular expressions with the matching behaviour of the reference (JavaScript regexes with the <c>u</c> flag):
/// a supplementary-plane character is one character of its own Unicode category, and <c>\s</c> has the meaning the
/// reference gives it. .NET matches UTF-16 code units, so the text is matched through a stand-in string in which each
/// surrogate pair is replaced by one BMP character of the same general category; matches map back to the original.
/// </summary>
internal sealed class JsRegex
{
    /// <summary>JavaScript's <c>\s</c> (ECMAScript WhiteSpace and LineTerminator).</summary>
    public const string JsWhitespace = @"\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff";

    /// <summary>Unicode <c>White_Space</c>, what the reference's Oniguruma rewrite gives <c>\s</c> in tokenizer.json patterns.</summary>
    public const string UnicodeWhitespace = @"\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

    private static readonly Lazy<char[]> Representatives = new(BuildRepresentatives);

    private readonly Regex _regex;

    public JsRegex(string dotnetPattern) => _regex = new Regex(dotnetPattern, RegexOptions.CultureInvariant);

    /// <summary>All matches, as (start, length) in UTF-16 units of <paramref name="text"/>.</summary>
    public List<(int Start, int Length)> Matches(string text)
    {
        var (masked, map) = Mask(text);
        var result = new List<(int, int)>();
        foreach (Match m in _regex.Matches(masked))
        {
            var start = map[m.Index];
            var end = map[m.Index + m.Length];
            result.Add((start, end - start));
        }
        return result;
    }

    /// <summary>The matched substrings (JavaScript's <c>text.match(regex)</c> with the <c>g</c> flag).</summary>
    public List<string> MatchAll(string text) => [.. Matches(text).Select(m => text.Substring(m.Start, m.Length))];

    /// <summary>Pieces between and including matches, empty matches dropped (the reference's <c>regex_split</c>).</summary>
    public List<string> SplitIsolated(string text)
    {
        var result = new List<string>();
        var prev = 0;
        foreach (var (start, length) in Matches(text))
        {
            if (prev < start) result.Add(text[prev..start]);
            if (length > 0) result.Add(text.Substring(start, length));
            prev = start + length;
        }
        if (prev < text.Length) result.Add(text[prev..]);
        return result;
    }

    /// <summary>Pieces between matches (JavaScript's <c>split</c> without capture groups).</summary>
    public List<string> SplitRemoved(string text)
    {
        var result = new List<string>();
        var prev = 0;
        foreach (var (start, length) in Matches(text))
        {
            if (length == 0 && start == 0) continue;
            result.Add(text[prev..start]);
            prev = start + length;
        }
        result.Add(text[prev..]);
        return result;
    }

    /// <summary>Replaces every match with <paramref name="replacement"/> (taken literally).</summary>
    public string ReplaceAll(string text, string replacement)
    {
        var sb = new StringBuilder();
        var prev = 0;
        foreach (var (start, length) in Matches(text))
        {
            sb.Append(text, prev, start - prev).Append(replacement);
            prev = start + length;
        }
        return sb.Append(text, prev, text.Length - prev).ToString();
    }

    private static (string Masked, int[] Map) Mask(string text)
    {
        var hasSurrogates = false;
        foreach (var c in text)
            if (char.IsSurrogate(c))
            {
                hasSurrogates = true;
                break;
            }
        if (!hasSurrogates)
        {
            var identity = new int[text.Length + 1];
            for (var i = 0; i <= text.Length; i++) identity[i] = i;
            return (text, identity);
        }
        var sb = new StringBuilder(text.Length);
        var map = new List<int>(text.Length + 1);
        for (var i = 0; i < text.Length; i++)
        {
            map.Add(i);
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                var category = CharUnicodeInfo.GetUnicodeCategory(char.ConvertToUtf32(text[i], text[i + 1]));
                sb.Append(Representatives.Value[(int)category]);
                i++;
            }
            else
            {
                sb.Append(text[i]);
            }
        }
        map.Add(text.Length);
        return (sb.ToString(), [.. map]);
    }

    /// <summary>For every general category, a BMP character of that category that no tokenizer pattern names.</summary>
    private static char[] BuildRepresentatives()
    {
        var reps = new char[Enum.GetValues<UnicodeCategory>().Length];
        Array.Fill(reps, '\uE000'); // a private-use character: category Co
        var found = new bool[reps.Length];
        for (int c = 0x100; c < 0x10000; c++)
        {
            var ch = (char)c;
            if (char.IsSurrogate(ch) || JsWhitespace.Contains(ch, StringComparison.Ordinal) || ch is '\u0085' or '\u180e') continue;
            var cat = (int)char.GetUnicodeCategory(ch);
            if (found[cat]) continue;
            reps[cat] = ch;
            found[cat] = true;
        }
        return reps;
    }

    /// <summary>
    /// Translates a tokenizer.json <c>Regex</c> pattern (Oniguruma syntax) to .NET the way the reference rewrites it to
    /// JavaScript for the escapes chat-model tokenizers use: <c>\s</c>/<c>\S</c> as Unicode White_Space, <c>\d</c>/<c>\D</c>
    /// as <c>\p{Nd}</c>. Other escapes pass through; a pattern .NET cannot compile is reported by the caller.
    /// </summary>
    public static string FromOniguruma(string pattern)
    {
        var sb = new StringBuilder();
        var inClass = 0;
        for (var i = 0; i < pattern.Length; i++)
        {
            var c = pattern[i];
            if (c == '\\' && i + 1 < pattern.Length)
            {
                var e = pattern[i + 1];
                switch (e)
                {
                    case 's': sb.Append(inClass > 0 ? UnicodeWhitespace : "[" + UnicodeWhitespace + "]"); break;
                    case 'S' when inClass == 0: sb.Append("[^" + UnicodeWhitespace + "]"); break;
                    case 'd': sb.Append(@"\p{Nd}"); break;
                    case 'D': sb.Append(@"\P{Nd}"); break;
                    default: sb.Append(c).Append(e); break;
                }
                i++;
                continue;
            }
            if (c == '[') inClass++;
            else if (c == ']' && inClass > 0) inClass--;
            sb.Append(c);
        }
        return sb.ToString();
    }
}
