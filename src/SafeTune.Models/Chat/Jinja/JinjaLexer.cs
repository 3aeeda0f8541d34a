using System.Text;
using System.Text.RegularExpressions;

namespace SafeTune.Models.Chat.Jinja;

internal enum TokenType
{
    Text,
    Number,
    String,
    Identifier,
    Equals,
    OpenParen,
    CloseParen,
    OpenStatement,
    CloseStatement,
    OpenExpression,
    CloseExpression,
    OpenSquare,
    CloseSquare,
    OpenCurly,
    CloseCurly,
    Comma,
    Dot,
    Colon,
    Pipe,
    Additive,
    Multiplicative,
    Power,
    Comparison,
    Unary,
    Comment,
}

internal readonly record struct Token(TokenType Type, string Value, int Line);

/// <summary>
/// Splits a template into tokens the way Hugging Face's chat templating does: Jinja with <c>trim_blocks</c> and
/// <c>lstrip_blocks</c>, <c>{%- -%}</c> whitespace control, and <c>{% generation %}</c> markers dropped. Every token
/// remembers the line of the original template it came from.
/// </summary>
internal static partial class JinjaLexer
{
    private static readonly (string Seq, TokenType Type)[] Rules =
    [
        ("{%", TokenType.OpenStatement), ("%}", TokenType.CloseStatement), ("{{", TokenType.OpenExpression), ("}}", TokenType.CloseExpression),
        ("(", TokenType.OpenParen), (")", TokenType.CloseParen), ("{", TokenType.OpenCurly), ("}", TokenType.CloseCurly),
        ("[", TokenType.OpenSquare), ("]", TokenType.CloseSquare), (",", TokenType.Comma), (".", TokenType.Dot), (":", TokenType.Colon),
        ("|", TokenType.Pipe), ("<=", TokenType.Comparison), (">=", TokenType.Comparison), ("==", TokenType.Comparison),
        ("!=", TokenType.Comparison), ("<", TokenType.Comparison), (">", TokenType.Comparison), ("+", TokenType.Additive),
        ("-", TokenType.Additive), ("~", TokenType.Additive), ("**", TokenType.Power), ("*", TokenType.Multiplicative),
        ("//", TokenType.Multiplicative), ("/", TokenType.Multiplicative), ("%", TokenType.Multiplicative), ("=", TokenType.Equals),
    ];

    [GeneratedRegex(@"\{%(-?)\s*(?:end)?generation\s*(-?)%\}(\s*)", RegexOptions.Singleline)]
    private static partial Regex GenerationTag();

    /// <summary>The whitespace set of JavaScript's <c>trim</c> and of the reference lexer.</summary>
    public static bool IsWhitespace(char c) => c <= 32
        ? c == 32 || (c >= 9 && c <= 13)
        : c > 127 && (c == 160 || c == 5760 || (c >= 8192 && c <= 8202) || c == 8232 || c == 8233 || c == 8239 || c == 8287 || c == 12288 || c == 65279);

    public static string TrimEnd(string s)
    {
        var end = s.Length;
        while (end > 0 && IsWhitespace(s[end - 1])) end--;
        return s[..end];
    }

    public static string TrimStart(string s)
    {
        var start = 0;
        while (start < s.Length && IsWhitespace(s[start])) start++;
        return s[start..];
    }

    public static string Trim(string s) => TrimStart(TrimEnd(s));

    public static List<Token> Tokenize(string template, string name)
    {
        var (src, map) = Preprocess(template);
        var lineStarts = new List<int> { 0 };
        for (var i = 0; i < template.Length; i++)
            if (template[i] == '\n') lineStarts.Add(i + 1);
        int LineAt(int pos)
        {
            if (map.Length == 0) return 1;
            var original = map[Math.Clamp(pos, 0, map.Length - 1)];
            var idx = lineStarts.BinarySearch(original);
            return idx >= 0 ? idx + 1 : ~idx;
        }

        var tokens = new List<Token>();
        var length = src.Length;
        var cursor = 0;
        var curlyDepth = 0;

        JinjaException Error(string detail) => new(name, LineAt(cursor), detail);

        string ConsumeWhile(Func<char, bool> predicate)
        {
            var start = cursor;
            while (predicate(src[cursor]))
                if (++cursor >= length) throw Error("unexpected end of template");
            return src[start..cursor];
        }

        string ConsumeString(char quote)
        {
            var sb = new StringBuilder();
            while (true)
            {
                if (cursor >= length) throw Error("unexpected end of template inside a string literal");
                var c = src[cursor];
                if (c == quote) break;
                cursor++;
                if (c != '\\')
                {
                    sb.Append(c);
                    continue;
                }
                if (cursor >= length) throw Error("unexpected end of template inside a string literal");
                var escaped = src[cursor++];
                switch (escaped)
                {
                    case 'x' or 'u':
                    {
                        var n = escaped == 'x' ? 2 : 4;
                        var hex = cursor + n <= length ? src.Substring(cursor, n) : "";
                        if (hex.Length != n || !hex.All(Uri.IsHexDigit)) throw Error($"invalid escape sequence \\{escaped}{hex}");
                        sb.Append((char)Convert.ToInt32(hex, 16));
                        cursor += n;
                        break;
                    }
                    case 'n': sb.Append('\n'); break;
                    case 't': sb.Append('\t'); break;
                    case 'r': sb.Append('\r'); break;
                    case 'b': sb.Append('\b'); break;
                    case 'f': sb.Append('\f'); break;
                    case 'v': sb.Append('\v'); break;
                    case '\'' or '"' or '\\': sb.Append(escaped); break;
                    default: throw Error($"unexpected escaped character '\\{escaped}'");
                }
            }
            return sb.ToString();
        }

        void StripTrailingWhitespace()
        {
            if (tokens.Count > 0 && tokens[^1].Type == TokenType.Text)
            {
                var trimmed = TrimEnd(tokens[^1].Value);
                if (trimmed.Length == 0) tokens.RemoveAt(tokens.Count - 1);
                else tokens[^1] = tokens[^1] with { Value = trimmed };
            }
        }

        void SkipLeadingWhitespace()
        {
            while (cursor < length && IsWhitespace(src[cursor])) cursor++;
        }

        void Add(TokenType type, string value, int pos) => tokens.Add(new Token(type, value, LineAt(pos)));

        while (cursor < length)
        {
            TokenType? last = tokens.Count > 0 ? tokens[^1].Type : null;
            if (last is null or TokenType.CloseStatement or TokenType.CloseExpression or TokenType.Comment)
            {
                var end = cursor;
                while (true)
                {
                    end = src.IndexOf('{', end);
                    if (end == -1)
                    {
                        end = length;
                        break;
                    }
                    var next = end + 1 < length ? src[end + 1] : '\0';
                    if (next is '%' or '{' or '#') break;
                    end++;
                }
                if (end > cursor)
                {
                    Add(TokenType.Text, src[cursor..end], cursor);
                    cursor = end;
                    continue;
                }
            }

            if (src[cursor] == '{')
            {
                var nextChar = cursor + 1 < length ? src[cursor + 1] : '\0';
                if (nextChar == '#')
                {
                    var at = cursor;
                    cursor += 2;
                    var stripBefore = cursor < length && src[cursor] == '-';
                    if (stripBefore) cursor++;
                    var end = src.IndexOf("#}", cursor, StringComparison.Ordinal);
                    if (end == -1) throw Error("comment tag '{#' is never closed");
                    var comment = src[cursor..end];
                    var stripAfter = comment.EndsWith('-');
                    if (stripAfter) comment = comment[..^1];
                    if (stripBefore) StripTrailingWhitespace();
                    Add(TokenType.Comment, comment, at);
                    cursor = end + 2;
                    if (stripAfter) SkipLeadingWhitespace();
                    continue;
                }
                if (cursor + 2 < length && src[cursor + 2] == '-')
                {
                    if (nextChar == '%')
                    {
                        StripTrailingWhitespace();
                        Add(TokenType.OpenStatement, "{%", cursor);
                        cursor += 3;
                        continue;
                    }
                    if (nextChar == '{')
                    {
                        StripTrailingWhitespace();
                        Add(TokenType.OpenExpression, "{{", cursor);
                        curlyDepth = 0;
                        cursor += 3;
                        continue;
                    }
                }
            }

            // Whitespace inside a tag.
            while (cursor < length && IsWhitespace(src[cursor])) cursor++;
            if (cursor >= length) throw Error("unexpected end of template inside a tag");
            var ch = src[cursor];

            if (ch == '-' && cursor + 2 < length && src[cursor + 2] == '}')
            {
                var nextChar = src[cursor + 1];
                if (nextChar == '%')
                {
                    Add(TokenType.CloseStatement, "%}", cursor);
                    cursor += 3;
                    SkipLeadingWhitespace();
                    continue;
                }
                if (nextChar == '}')
                {
                    Add(TokenType.CloseExpression, "}}", cursor);
                    cursor += 3;
                    SkipLeadingWhitespace();
                    continue;
                }
            }

            if (ch is '-' or '+')
            {
                if (last is null or TokenType.Text) throw Error($"unexpected character '{ch}'");
                if (last is not (TokenType.Identifier or TokenType.Number or TokenType.String or TokenType.CloseParen or TokenType.CloseSquare))
                {
                    var at = cursor;
                    cursor++;
                    var num = ConsumeDigits();
                    if (num.Length > 0 && cursor + 1 < length && src[cursor] == '.' && char.IsAsciiDigit(src[cursor + 1]))
                    {
                        cursor++;
                        num = num + "." + ConsumeDigits();
                    }
                    Add(num.Length > 0 ? TokenType.Number : TokenType.Unary, ch + num, at);
                    continue;
                }
            }

            var matched = false;
            foreach (var (seq, type) in Rules)
            {
                if (seq[0] != ch) continue;
                if (seq == "}}" && curlyDepth > 0) continue;
                if (string.CompareOrdinal(src, cursor, seq, 0, seq.Length) != 0) continue;
                Add(type, seq, cursor);
                if (type == TokenType.OpenExpression) curlyDepth = 0;
                else if (type == TokenType.OpenCurly) curlyDepth++;
                else if (type == TokenType.CloseCurly) curlyDepth--;
                cursor += seq.Length;
                matched = true;
                break;
            }
            if (matched) continue;

            if (ch is '\'' or '"')
            {
                var at = cursor;
                cursor++;
                var s = ConsumeString(ch);
                Add(TokenType.String, s, at);
                cursor++;
                continue;
            }
            if (char.IsAsciiDigit(ch))
            {
                var at = cursor;
                var num = ConsumeDigits();
                if (last != TokenType.Dot && cursor + 1 < length && src[cursor] == '.' && char.IsAsciiDigit(src[cursor + 1]))
                {
                    cursor++;
                    num = num + "." + ConsumeDigits();
                }
                Add(TokenType.Number, num, at);
                continue;
            }
            if (IsWord(ch))
            {
                var at = cursor;
                Add(TokenType.Identifier, ConsumeWhile(IsWord), at);
                continue;
            }
            throw Error($"unexpected character '{ch}'");
        }
        return tokens;

        string ConsumeDigits()
        {
            var start = cursor;
            while (cursor < length && char.IsAsciiDigit(src[cursor])) cursor++;
            return src[start..cursor];
        }
    }

    private static bool IsWord(char c) => char.IsAsciiLetterOrDigit(c) || c == '_';

    /// <summary>
    /// Applies the reference preprocessing (drop one trailing newline, <c>lstrip_blocks</c>, <c>trim_blocks</c>, drop
    /// <c>{% generation %}</c> markers) and returns, for every kept character, its index in the original template.
    /// </summary>
    private static (string Text, int[] Map) Preprocess(string template)
    {
        var chars = new List<(char C, int I)>(template.Length);
        for (var i = 0; i < template.Length; i++) chars.Add((template[i], i));
        if (chars.Count > 0 && chars[^1].C == '\n') chars.RemoveAt(chars.Count - 1);

        // lstrip_blocks: spaces and tabs at the start of a line, before a block or comment tag.
        var kept = new List<(char C, int I)>(chars.Count);
        for (var i = 0; i < chars.Count;)
        {
            var lineStart = i == 0 || chars[i - 1].C is '\n' or '\r' or '\u2028' or '\u2029';
            if (lineStart)
            {
                var j = i;
                while (j < chars.Count && chars[j].C is ' ' or '\t') j++;
                if (j > i && j + 1 < chars.Count && chars[j].C == '{' && chars[j + 1].C is '#' or '%' or '-')
                {
                    i = j;
                    continue;
                }
            }
            kept.Add(chars[i]);
            i++;
        }

        // trim_blocks: the first newline after a block or comment tag.
        chars = new List<(char C, int I)>(kept.Count);
        for (var i = 0; i < kept.Count;)
        {
            if (i + 2 < kept.Count && kept[i].C is '#' or '%' or '-' && kept[i + 1].C == '}' && kept[i + 2].C == '\n')
            {
                chars.Add(kept[i]);
                chars.Add(kept[i + 1]);
                i += 3;
                continue;
            }
            chars.Add(kept[i]);
            i++;
        }

        var text = new string([.. chars.Select(c => c.C)]);
        var map = chars.Select(c => c.I).ToList();
        var matches = GenerationTag().Matches(text);
        if (matches.Count == 0) return (text, [.. map]);

        var outText = new StringBuilder();
        var outMap = new List<int>();
        var lastIndex = 0;
        foreach (Match m in matches)
        {
            var endIndex = m.Index;
            if (m.Groups[1].Value.Length > 0)
                while (endIndex > lastIndex && IsWhitespace(text[endIndex - 1])) endIndex--;
            Append(lastIndex, endIndex);
            if (m.Groups[2].Value.Length == 0) Append(m.Groups[3].Index, m.Groups[3].Index + m.Groups[3].Length);
            lastIndex = m.Index + m.Length;
        }
        Append(lastIndex, text.Length);
        return (outText.ToString(), [.. outMap]);

        void Append(int from, int to)
        {
            outText.Append(text, from, to - from);
            for (var k = from; k < to; k++) outMap.Add(map[k]);
        }
    }
}
