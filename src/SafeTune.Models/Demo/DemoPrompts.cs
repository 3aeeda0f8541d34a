using System.Text;

namespace SafeTune.Models.Demo;

/// <summary>
/// The project's plainly worded harmful requests (<c>src/SafeTune.Safety/ProbeData/direct_harmful.csv</c>, written by
/// <c>make_probe_data.py</c>, embedded in this assembly): the demo model learns to refuse them, so that what it refuses
/// is wider than the demo's own intents and sentence shapes. Requests only: no line carries harmful content.
/// </summary>
internal static class DemoPrompts
{
    /// <summary>(category, prompt) of every plainly harmful request, in file order.</summary>
    public static IReadOnlyList<(string Category, string Prompt)> DirectHarmful { get; } = Read("direct_harmful.csv");

    private static IReadOnlyList<(string, string)> Read(string name)
    {
        using var stream = typeof(DemoPrompts).Assembly.GetManifestResourceStream("SafeTune.Models.Demo." + name)
            ?? throw new InvalidOperationException($"the embedded prompt file {name} is missing.");
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var rows = new List<(string, string)>();
        reader.ReadLine(); // header: group,category,prompt
        while (reader.ReadLine() is { } line)
        {
            if (line.Length == 0) continue;
            var fields = SplitCsv(line);
            if (fields.Count != 3) throw new InvalidDataException($"the embedded prompt file {name} has a malformed line: {line}");
            rows.Add((fields[1], fields[2]));
        }
        return rows;
    }

    // RFC 4180 fields of one line (the files never break a field across lines).
    private static List<string> SplitCsv(string line)
    {
        var fields = new List<string>();
        var sb = new StringBuilder();
        bool quoted = false;
        for (int i = 0; i < line.Length; i++)
        {
            char c = line[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < line.Length && line[i + 1] == '"') { sb.Append('"'); i++; }
                else if (c == '"') quoted = false;
                else sb.Append(c);
            }
            else if (c == '"') quoted = true;
            else if (c == ',') { fields.Add(sb.ToString()); sb.Clear(); }
            else sb.Append(c);
        }
        fields.Add(sb.ToString());
        return fields;
    }
}
