using System.Text;

namespace SafeTune.Safety.Probes;

/// <summary>What <see cref="PromptText.Deduplicate"/> kept and dropped.</summary>
/// <param name="Harmful">The harmful prompts kept, first occurrences in input order.</param>
/// <param name="Harmless">The harmless prompts kept.</param>
/// <param name="Duplicates">Prompts dropped because an earlier prompt of the same class normalises to the same text.</param>
/// <param name="Conflicts">Distinct normalised texts found on both sides; every copy of them is dropped from both.</param>
public sealed record DeduplicatedPrompts(IReadOnlyList<string> Harmful, IReadOnlyList<string> Harmless, int Duplicates, int Conflicts);

/// <summary>Prompt normalisation for deduplication before any train/test split.</summary>
public static class PromptText
{
    /// <summary>
    /// The text compared when deduplicating: Unicode NFKC, lower case, runs of white space made one space, and leading
    /// or trailing white space, quotes and punctuation removed. "How do I bake bread?" and " how do I  bake bread "
    /// normalise alike.
    /// </summary>
    public static string Normalize(string prompt)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        var s = prompt.Normalize(NormalizationForm.FormKC).ToLowerInvariant();
        var b = new StringBuilder(s.Length);
        bool space = false;
        foreach (var c in s)
        {
            if (char.IsWhiteSpace(c)) { space = b.Length > 0; continue; }
            if (space) { b.Append(' '); space = false; }
            b.Append(c);
        }
        return b.ToString().Trim(' ', '"', '\'', '.', '?', '!', ',', ';', ':', '\u201c', '\u201d', '\u2018', '\u2019');
    }

    /// <summary>
    /// Drops repeats inside each class and every prompt whose normalised text appears on both sides (its label is
    /// ambiguous), keeping the first occurrence of each text in input order.
    /// </summary>
    public static DeduplicatedPrompts Deduplicate(IEnumerable<string> harmful, IEnumerable<string> harmless)
    {
        ArgumentNullException.ThrowIfNull(harmful);
        ArgumentNullException.ThrowIfNull(harmless);
        int duplicates = 0;
        List<(string Text, string Key)> Unique(IEnumerable<string> prompts)
        {
            var seen = new HashSet<string>(StringComparer.Ordinal);
            var kept = new List<(string, string)>();
            foreach (var p in prompts)
            {
                var key = Normalize(p);
                if (seen.Add(key)) kept.Add((p, key));
                else duplicates++;
            }
            return kept;
        }
        var h = Unique(harmful);
        var s = Unique(harmless);
        var both = new HashSet<string>(h.Select(x => x.Key), StringComparer.Ordinal);
        both.IntersectWith(s.Select(x => x.Key));
        return new DeduplicatedPrompts(
            [.. h.Where(x => !both.Contains(x.Key)).Select(x => x.Text)],
            [.. s.Where(x => !both.Contains(x.Key)).Select(x => x.Text)],
            duplicates, both.Count);
    }
}
