using System.Text.RegularExpressions;
using SafeTune.TestSupport;

namespace SafeTune.Onnx.Tests;

/// <summary>
/// The sources under src keep no echo summaries: a one-line <c>&lt;summary&gt;</c> whose words (the names a
/// <c>cref</c> points at included; "the", "a", "an", "of" and "to" aside) are all words of the name it documents, such as
/// "The options." on <c>Options</c>. Such a line says nothing the name does not; a public member gets a real sentence,
/// an internal one none.
/// </summary>
public sealed partial class SourceStyleTests
{
    private static readonly HashSet<string> Ignored = ["the", "a", "an", "of", "to"];

    [GeneratedRegex(@"^\s*///\s*<summary>(.*)</summary>\s*$")]
    private static partial Regex OneLineSummary();

    [GeneratedRegex(@"\b(?:class|record|struct|interface|enum)\s+(?:struct\s+|class\s+)?([A-Za-z_]\w*)")]
    private static partial Regex TypeDeclaration();

    [GeneratedRegex(@"\bdelegate\s+.*?([A-Za-z_]\w*)\s*\(")]
    private static partial Regex DelegateDeclaration();

    [GeneratedRegex(@"<[^<>]*>")]
    private static partial Regex Angles();

    [GeneratedRegex(@"\{|=>|(?<![=!<>])=(?!=)|;|\(")]
    private static partial Regex DeclarationEnd();

    [GeneratedRegex(@"[A-Za-z_]\w*")]
    private static partial Regex Identifier();

    [GeneratedRegex(@"<[^>]*?(?:cref|name|langword)=""([^""]*)""[^>]*>")]
    private static partial Regex ReferenceTag();

    [GeneratedRegex(@"<[^>]*>")]
    private static partial Regex Tag();

    [GeneratedRegex(@"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")]
    private static partial Regex CamelWord();

    [GeneratedRegex(@"[A-Za-z0-9]+")]
    private static partial Regex Word();

    /// <summary>An identifier's words, lower-cased, in order: <c>LoraAlpha</c> gives lora, alpha.</summary>
    private static List<string> NameWords(string name) => [.. CamelWord().Matches(name).Select(m => m.Value.ToLowerInvariant())];

    /// <summary>The name a declaration line declares: a type, a member, or an enum member; null for anything else.</summary>
    internal static string? DeclaredName(string line)
    {
        string s = line.Trim();
        if (s.Length == 0 || s.StartsWith("//", StringComparison.Ordinal) || s.StartsWith('#')) return null;
        if (TypeDeclaration().Match(s) is { Success: true } type) return type.Groups[1].Value;
        if (DelegateDeclaration().Match(s) is { Success: true } del) return del.Groups[1].Value;
        string previous;
        do { previous = s; s = Angles().Replace(s, ""); } while (s != previous);
        var end = DeclarationEnd().Match(s);
        var head = end.Success ? s[..end.Index] : s;
        return Identifier().Matches(head).LastOrDefault()?.Value;
    }

    /// <summary>True when every word of the summary text is a word of <paramref name="name"/>.</summary>
    internal static bool Echoes(string summary, string name)
    {
        string text = Tag().Replace(ReferenceTag().Replace(summary, m => " " + string.Join(' ', NameWords(m.Groups[1].Value)) + " "), " ");
        var words = Word().Matches(text).Select(m => m.Value.ToLowerInvariant()).Where(w => !Ignored.Contains(w)).ToList();
        // A word of the summary may also be several words of the name run together ("LoRA" for Lo-RA, "RMSNorm" for Rms-Norm).
        var parts = NameWords(name);
        var inName = new HashSet<string>();
        for (int i = 0; i < parts.Count; i++)
            for (int j = i + 1; j <= parts.Count; j++) inName.Add(string.Concat(parts.Skip(i).Take(j - i)));
        return words.Count > 0 && words.All(inName.Contains);
    }

    [Theory]
    [InlineData("/// <summary>The options.</summary>", "    public BatchingOptions Options => _options;", true)]
    [InlineData("/// <summary>LoRA alpha.</summary>", "    public double LoraAlpha { get; init; } = 16;", true)]
    [InlineData("/// <summary>A socket.</summary>", "    Socket,", true)]
    [InlineData("/// <summary>RMSNorm epsilon.</summary>", "    public float RmsNormEpsilon { get; init; } = 1e-6f;", true)]
    [InlineData("/// <summary>Progress of an experiment.</summary>", "internal sealed record ExperimentProgress(int Done, int Total);", true)]
    [InlineData("/// <summary>Options of <see cref=\"Fit.Run\"/>.</summary>", "public sealed record FitOptions", false)]
    [InlineData("/// <summary>The number of dimensions (0 for a scalar).</summary>", "    public int Rank => Dims.Length;", false)]
    [InlineData("/// <summary>Identity.</summary>", "    public Value Identity<T>(Value x) => Op(\"Identity\", x);", true)]
    public void An_echo_is_a_summary_made_of_the_name_s_words(string summary, string declaration, bool echo)
    {
        var name = DeclaredName(declaration);
        Assert.NotNull(name);
        Assert.Equal(echo, Echoes(OneLineSummary().Match(summary).Groups[1].Value, name));
    }

    [Fact]
    public void No_summary_under_src_echoes_the_name_it_documents()
    {
        var echoes = new List<string>();
        foreach (var file in Repo.SourceFiles("src"))
        {
            var lines = File.ReadAllLines(file);
            for (int i = 0; i < lines.Length; i++)
            {
                if (OneLineSummary().Match(lines[i]) is not { Success: true } summary) continue;
                int j = i + 1;
                while (j < lines.Length && lines[j].TrimStart() is var t && (t.StartsWith("///", StringComparison.Ordinal) || t.StartsWith('['))) j++;
                if (j == lines.Length || DeclaredName(lines[j]) is not { } name) continue;
                if (Echoes(summary.Groups[1].Value, name))
                    echoes.Add($"{Path.GetRelativePath(Repo.Root, file)}:{i + 1}: {lines[i].Trim()} on {name}");
            }
        }
        Assert.True(echoes.Count == 0,
            $"{echoes.Count} summaries only repeat the name they document; write what the name does not say, or drop them from internal members:\n"
            + string.Join("\n", echoes));
    }
}
