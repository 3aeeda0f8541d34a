using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace SafeTune.Training.Evaluation;

/// <summary>
/// Exact-match scoring of a reply against a reference answer:
/// <list type="bullet">
/// <item>GSM8K-style references (ending with <c>#### N</c>): the last number in the reply must equal N (thousands
/// separators and a trailing period ignored; 18, 18.0 and 18.00 are equal).</item>
/// <item>short references (one line, at most <see cref="DefaultShortAnswerChars"/> characters by default): the normalised
/// reply must equal the normalised reference (<see cref="Normalize"/>).</item>
/// <item>longer references are not scored for exact match (they still count for the response loss).</item>
/// </list>
/// </summary>
internal static partial class AnswerMatch
{
    /// <summary>The longest reference, in characters, scored by normalised equality.</summary>
    public const int DefaultShortAnswerChars = 100;

    /// <summary>The number after the last <c>####</c> of a GSM8K answer, or null when there is none.</summary>
    public static string? Gsm8kAnswer(string reference)
    {
        ArgumentNullException.ThrowIfNull(reference);
        int at = reference.LastIndexOf("####", StringComparison.Ordinal);
        if (at < 0) return null;
        var m = Number().Match(reference[(at + 4)..]);
        return m.Success ? Canonical(m.Value) : null;
    }

    /// <summary>The last number written in <paramref name="text"/> (e.g. "$1,250.50." gives 1250.5), canonical; null when there is none.</summary>
    public static string? LastNumber(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var matches = Number().Matches(text);
        return matches.Count == 0 ? null : Canonical(matches[^1].Value);
    }

    /// <summary>
    /// Lower case, whitespace runs collapsed to one space, surrounding whitespace, quotes and final punctuation
    /// (<c>. ! ?</c>) removed, typographic apostrophes made ASCII.
    /// </summary>
    public static string Normalize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var sb = new StringBuilder(text.Length);
        bool space = false;
        foreach (var ch in text.Replace('\u2019', '\'').Replace('\u2018', '\'').Trim())
        {
            if (char.IsWhiteSpace(ch)) { space = true; continue; }
            if (space && sb.Length > 0) sb.Append(' ');
            space = false;
            sb.Append(char.ToLowerInvariant(ch));
        }
        return sb.ToString().Trim('"', '\'', '`').TrimEnd('.', '!', '?').Trim();
    }

    /// <summary>
    /// Whether <paramref name="reply"/> answers <paramref name="reference"/> exactly (see the class remarks); null when the
    /// reference is not one this scores (long, multi-line, without <c>####</c>).
    /// </summary>
    public static bool? IsCorrect(string reply, string reference, int shortAnswerChars = DefaultShortAnswerChars)
    {
        ArgumentNullException.ThrowIfNull(reply);
        ArgumentNullException.ThrowIfNull(reference);
        if (Gsm8kAnswer(reference) is { } expected) return LastNumber(reply) == expected;
        var r = reference.Trim();
        if (r.Length == 0 || r.Length > shortAnswerChars || r.Contains('\n', StringComparison.Ordinal)) return null;
        return Normalize(reply) == Normalize(r);
    }

    /// <summary>A number in canonical form: no thousands separators, no trailing zeros after the point, no bare point.</summary>
    private static string Canonical(string number)
    {
        var s = number.Replace(",", "", StringComparison.Ordinal).TrimEnd('.');
        if (decimal.TryParse(s, NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var d))
            return d.ToString("0.############################", CultureInfo.InvariantCulture);
        return s;
    }

    [GeneratedRegex(@"-?\d[\d,]*(\.\d+)?")]
    private static partial Regex Number();
}
