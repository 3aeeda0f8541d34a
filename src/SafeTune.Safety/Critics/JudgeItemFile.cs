using System.Text;
using System.Text.Json;
using SafeTune.Safety.Data;

namespace SafeTune.Safety.Critics;

/// <summary>
/// Reads (prompt, response) pairs for a judge from a <c>.jsonl</c> file (one JSON object per non-blank line) or a
/// <c>.csv</c> file (RFC 4180, header first). Columns are found by name, case-insensitively: the prompt among
/// <see cref="PromptFile.PromptColumns"/> and the response among <see cref="ResponseColumns"/>, unless named. As in
/// <see cref="PromptFile"/>, a prompt read from an <c>instruction</c> field is followed by a non-empty <c>input</c>
/// field (Alpaca layout). JSON values that are not strings are taken as their JSON text; a JSON null is empty.
/// </summary>
public static class JudgeItemFile
{
    /// <summary>The response column names tried, in order, when none is named.</summary>
    public static IReadOnlyList<string> ResponseColumns { get; } = ["response", "output", "target", "answer", "completion"];

    /// <summary>Reads every record of <paramref name="path"/> as a judge item.</summary>
    /// <param name="path">A .jsonl or .csv file.</param>
    /// <param name="promptColumn">The prompt column (default: the first of <see cref="PromptFile.PromptColumns"/> present).</param>
    /// <param name="responseColumn">The response column (default: the first of <see cref="ResponseColumns"/> present).</param>
    /// <exception cref="FileNotFoundException">There is no such file.</exception>
    /// <exception cref="InvalidDataException">The file is empty or malformed, or a column is missing (the message lists the columns found, with the line).</exception>
    public static IReadOnlyList<JudgeItem> Read(string path, string? promptColumn = null, string? responseColumn = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var ext = Path.GetExtension(path).ToLowerInvariant();
        if (ext is not (".jsonl" or ".csv")) throw new InvalidDataException($"{path}: unknown extension '{ext}' (expected .jsonl or .csv)");
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such file", path);
        var text = File.ReadAllText(path, Encoding.UTF8);
        if (string.IsNullOrWhiteSpace(text)) throw new InvalidDataException($"{path}: the file is empty");
        var items = ext == ".csv" ? ReadCsv(path, text, promptColumn, responseColumn) : ReadJsonl(path, text, promptColumn, responseColumn);
        if (items.Count == 0) throw new InvalidDataException($"{path}: the file holds no records");
        return items;
    }

    private static List<JudgeItem> ReadCsv(string path, string text, string? promptColumn, string? responseColumn)
    {
        var records = PromptFile.ParseCsv(path, text);
        var header = records[0].Select(h => h.Trim()).ToList();
        int p = Find(header, promptColumn, PromptFile.PromptColumns);
        int r = Find(header, responseColumn, ResponseColumns);
        if (p < 0) throw Missing(path, 1, "column", "prompt", promptColumn, PromptFile.PromptColumns, header);
        if (r < 0) throw Missing(path, 1, "column", "response", responseColumn, ResponseColumns, header);
        var items = new List<JudgeItem>(records.Count - 1);
        for (int i = 1; i < records.Count; i++)
        {
            var rec = records[i];
            if (rec.Count == 1 && rec[0].Length == 0) continue;
            items.Add(new JudgeItem(p < rec.Count ? rec[p] : "", r < rec.Count ? rec[r] : ""));
        }
        return items;
    }

    private static List<JudgeItem> ReadJsonl(string path, string text, string? promptColumn, string? responseColumn)
    {
        var items = new List<JudgeItem>();
        var lines = text.Split('\n');
        for (int n = 0; n < lines.Length; n++)
        {
            var line = lines[n].Trim();
            if (n == 0 && line.StartsWith('\uFEFF')) line = line[1..];
            if (line.Length == 0) continue;
            JsonDocument doc;
            try { doc = JsonDocument.Parse(line); }
            catch (JsonException e) { throw new InvalidDataException($"{path}: line {n + 1} is not valid JSON: {e.Message}", e); }
            using (doc)
            {
                var root = doc.RootElement;
                if (root.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{path}: line {n + 1} is not a JSON object");
                var names = root.EnumerateObject().Select(x => x.Name).ToList();
                int p = Find(names, promptColumn, PromptFile.PromptColumns);
                int r = Find(names, responseColumn, ResponseColumns);
                if (p < 0) throw Missing(path, n + 1, "field", "prompt", promptColumn, PromptFile.PromptColumns, names);
                if (r < 0) throw Missing(path, n + 1, "field", "response", responseColumn, ResponseColumns, names);
                var prompt = Text(root.GetProperty(names[p]));
                if (string.Equals(names[p], "instruction", StringComparison.OrdinalIgnoreCase)
                    && root.EnumerateObject().FirstOrDefault(x => string.Equals(x.Name, "input", StringComparison.OrdinalIgnoreCase)) is { Value.ValueKind: JsonValueKind.String } input
                    && !string.IsNullOrWhiteSpace(input.Value.GetString()))
                    prompt += "\n" + input.Value.GetString();
                items.Add(new JudgeItem(prompt, Text(root.GetProperty(names[r]))));
            }
        }
        return items;
    }

    private static string Text(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.String => e.GetString()!,
        JsonValueKind.Null => "",
        _ => e.GetRawText(),
    };

    private static int Find(IReadOnlyList<string> names, string? wanted, IReadOnlyList<string> defaults)
    {
        IEnumerable<string> candidates = wanted is null ? defaults : [wanted];
        foreach (var c in candidates)
            for (int i = 0; i < names.Count; i++)
                if (string.Equals(names[i].Trim(), c, StringComparison.OrdinalIgnoreCase)) return i;
        return -1;
    }

    private static InvalidDataException Missing(string path, int line, string kind, string role, string? wanted, IReadOnlyList<string> defaults, IReadOnlyList<string> found) =>
        new($"{path}: line {line}: no {role} {kind} " + (wanted is null ? $"among {string.Join(", ", defaults)}" : $"'{wanted}'")
            + $"; {kind}s found: {(found.Count == 0 ? "none" : string.Join(", ", found))}");
}
