using System.Text.RegularExpressions;
using SafeTune.TestSupport;

namespace SafeTune.Onnx.Tests;

/// <summary>
/// docs/architecture.md stays true of the code: every <c>src/...</c> and <c>tests/...</c> path it writes in backticks
/// exists, and every name in backticks that reads as a type (<c>Type</c> or <c>Type.Member</c>) is declared in src or
/// tests, with the member named in the type's own files; its project table matches the <c>.csproj</c> references.
/// </summary>
public sealed partial class ArchitectureDocTests
{
    private static readonly string Doc = File.ReadAllText(Path.Combine(Repo.Root, "docs", "architecture.md"));

    [GeneratedRegex("`([^`\n]+)`")]
    private static partial Regex Code();

    [GeneratedRegex(@"^([A-Z][A-Za-z0-9]*)(?:\.([A-Z][A-Za-z0-9]*))?(?:\(\))?$")]
    private static partial Regex TypeName();

    private static IEnumerable<string> Spans() => Code().Matches(Doc).Select(m => m.Groups[1].Value.Trim());

    private static readonly Lazy<Dictionary<string, string>> Sources = new(() =>
        Repo.SourceFiles("src", "tests").ToDictionary(f => f, File.ReadAllText));

    private static IEnumerable<string> FilesDeclaring(string type)
    {
        var declaration = new Regex($@"\b(?:class|record|enum|interface|struct)\s+{type}\b|\bdelegate\s+\S+\s+{type}\s*\(");
        return Sources.Value.Where(p => declaration.IsMatch(p.Value)).Select(p => p.Key);
    }

    private static bool IsFolderName(string name) =>
        Directory.EnumerateDirectories(Path.Combine(Repo.Root, "src"), name, SearchOption.AllDirectories).Any();

    [Fact]
    public void The_page_names_paths_and_types()
    {
        Assert.Contains(Spans(), s => s.StartsWith("src/", StringComparison.Ordinal));
        Assert.Contains(Spans(), s => s.StartsWith("tests/", StringComparison.Ordinal));
        Assert.Contains(Spans(), s => TypeName().Match(s) is { Success: true } m && m.Groups[2].Success);
    }

    [Fact]
    public void The_project_table_matches_the_project_references()
    {
        var src = Path.Combine(Repo.Root, "src");
        var projects = Directory.GetDirectories(src).Select(Path.GetFileName).Where(n => File.Exists(Path.Combine(src, n!, n + ".csproj"))).ToList();
        var rows = Doc.Split('\n').Where(l => l.StartsWith("SafeTune.", StringComparison.Ordinal))
            .Select(l => Regex.Split(l.Trim(), @"\s{2,}")).ToDictionary(c => c[0], c => c[1]);
        Assert.Equal(projects.Order(StringComparer.Ordinal), rows.Keys.Order(StringComparer.Ordinal));
        foreach (var (project, written) in rows)
        {
            var actual = Regex.Matches(File.ReadAllText(Path.Combine(src, project, project + ".csproj")), @"ProjectReference Include=""[^""]*?(SafeTune\.\w+)\.csproj""")
                .Select(m => m.Groups[1].Value).Order(StringComparer.Ordinal).ToList();
            var expected = written == "-" ? []
                : written.StartsWith("every project but ", StringComparison.Ordinal)
                    ? projects.Where(p => p != project && p != "SafeTune." + written["every project but ".Length..]).Select(p => p!)
                    : written.Split(", ").Select(n => "SafeTune." + n);
            Assert.True(expected.Order(StringComparer.Ordinal).SequenceEqual(actual), $"{project}: the page says {written}, the .csproj references {string.Join(", ", actual)}");
        }
    }

    [Fact]
    public void Every_path_in_backticks_exists()
    {
        var missing = Spans()
            .Where(s => (s.StartsWith("src/", StringComparison.Ordinal) || s.StartsWith("tests/", StringComparison.Ordinal)) && !s.Contains('<'))
            .Distinct()
            .Where(s => !File.Exists(Path.Combine(Repo.Root, s)) && !Directory.Exists(Path.Combine(Repo.Root, s.TrimEnd('/'))))
            .ToList();
        Assert.True(missing.Count == 0, "docs/architecture.md names paths that do not exist: " + string.Join(", ", missing));
    }

    [Fact]
    public void Every_type_and_member_in_backticks_is_in_the_code()
    {
        var missing = new List<string>();
        foreach (var span in Spans().Distinct())
        {
            if (TypeName().Match(span) is not { Success: true } m) continue;
            string type = m.Groups[1].Value;
            var files = FilesDeclaring(type).ToList();
            if (m.Groups[2].Success)
            {
                var member = new Regex($@"\b{m.Groups[2].Value}\b");
                if (files.Count == 0) missing.Add($"{span} (no type {type})");
                else if (!files.Any(f => member.IsMatch(Sources.Value[f]))) missing.Add($"{span} (no member {m.Groups[2].Value} in {type})");
            }
            else if (files.Count == 0 && !IsFolderName(type))
            {
                // A bare name that is neither a type nor a folder must at least be an identifier of the code (a member, a framework type).
                var word = new Regex($@"\b{type}\b");
                if (!Sources.Value.Values.Any(word.IsMatch)) missing.Add(span);
            }
        }
        Assert.True(missing.Count == 0, "docs/architecture.md names what the code does not have: " + string.Join(", ", missing));
    }
}
