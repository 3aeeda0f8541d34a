using System.Text;
using System.Text.Json;

namespace SafeTune.Safety.Data;

/// <summary>
/// Reads lists of prompts from data set files. A spec is a path, optionally followed by <c>:COLUMN</c> to name the
/// column or field holding the prompt. Supported formats by extension:
/// <c>.csv</c> (RFC 4180: quoted fields may hold commas, doubled quotes and newlines; the first record is the header),
/// <c>.jsonl</c> (one JSON object per non-blank line) and <c>.txt</c> (one prompt per non-empty line).
/// Without a column the prompt field is the first of <see cref="PromptColumns"/> present (case-insensitive).
/// For JSONL records read through the <c>instruction</c> field, a non-empty <c>input</c> field (or the <c>input</c> of
/// the first element of an <c>instances</c> array, as in Self-Instruct) is appended after a newline.
/// </summary>
public static class PromptFile
{
    /// <summary>The column names tried, in order, when no column is named.</summary>
    public static IReadOnlyList<string> PromptColumns { get; } = ["prompt", "goal", "question", "forbidden_prompt", "Behavior", "instruction"];

    /// <summary>Reads the prompts named by <paramref name="spec"/> (<c>PATH</c> or <c>PATH:COLUMN</c>).</summary>
    /// <param name="spec">The file, optionally with the prompt column.</param>
    /// <returns>One prompt per record, in file order.</returns>
    /// <exception cref="InvalidDataException">The file is empty, has no prompt column, holds a malformed record, or has an unknown extension.</exception>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    public static IReadOnlyList<string> Read(string spec)
    {
        var (path, column) = ParseSpec(spec);
        return ReadField(path, column, promptMode: true);
    }

    /// <summary>
    /// Reads one named column (CSV) or field (JSONL) of every record, for example XSTest's <c>label</c>; the values
    /// line up with the prompts from <see cref="Read"/>. JSON values that are not strings are returned as their JSON text.
    /// </summary>
    /// <param name="spec">The file (a <c>:COLUMN</c> suffix, if any, is ignored).</param>
    /// <param name="column">The column or field name (case-insensitive).</param>
    /// <exception cref="InvalidDataException">The file is empty or malformed, lacks the column, or is not CSV or JSONL.</exception>
    public static IReadOnlyList<string> ReadColumn(string spec, string column)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(column);
        var (path, _) = ParseSpec(spec);
        if (Extension(path) == ".txt") throw new InvalidDataException($"{path}: a .txt file has no columns");
        return ReadField(path, column, promptMode: false);
    }

    /// <summary>Splits <c>PATH:COLUMN</c>; a colon is a column separator only when the text after it is no path and the whole spec is not an existing file.</summary>
    internal static (string Path, string? Column) ParseSpec(string spec)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(spec);
        int colon = spec.LastIndexOf(':');
        if (colon > 1 && colon < spec.Length - 1 && !File.Exists(spec))
        {
            var tail = spec[(colon + 1)..];
            if (tail.IndexOfAny(['/', '\\']) < 0) return (spec[..colon], tail);
        }
        return (spec, null);
    }

    private static string Extension(string path) => Path.GetExtension(path).ToLowerInvariant();

    private static IReadOnlyList<string> ReadField(string path, string? column, bool promptMode)
    {
        var ext = Extension(path);
        if (ext is not (".csv" or ".jsonl" or ".txt"))
            throw new InvalidDataException($"{path}: unknown extension '{ext}' (expected .csv, .jsonl or .txt)");
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such file", path);
        var text = File.ReadAllText(path, Encoding.UTF8);
        if (string.IsNullOrWhiteSpace(text)) throw new InvalidDataException($"{path}: the file is empty");
        return ext switch
        {
            ".csv" => ReadCsv(path, text, column),
            ".jsonl" => ReadJsonl(path, text, column, promptMode),
            _ => ReadTxt(text),
        };
    }

    private static List<string> ReadTxt(string text)
    {
        var result = new List<string>();
        foreach (var line in text.Split('\n'))
        {
            var t = line.TrimEnd('\r');
            if (!string.IsNullOrWhiteSpace(t)) result.Add(t);
        }
        return result;
    }

    private static List<string> ReadCsv(string path, string text, string? column)
    {
        var records = ParseCsv(path, text);
        if (records.Count == 0) throw new InvalidDataException($"{path}: the file is empty");
        var header = records[0];
        int index = FindColumn(header, column);
        if (index < 0)
            throw new InvalidDataException(
                $"{path}: no column {(column is null ? "among " + string.Join(", ", PromptColumns) : "'" + column + "'")}; columns found: {string.Join(", ", header)}");
        var result = new List<string>(records.Count - 1);
        for (int r = 1; r < records.Count; r++)
        {
            var rec = records[r];
            if (rec.Count == 1 && rec[0].Length == 0) continue; // blank line
            result.Add(index < rec.Count ? rec[index] : "");
        }
        return result;
    }

    private static int FindColumn(IReadOnlyList<string> names, string? column)
    {
        IEnumerable<string> wanted = column is null ? PromptColumns : [column];
        foreach (var w in wanted)
            for (int i = 0; i < names.Count; i++)
                if (string.Equals(names[i].Trim(), w, StringComparison.OrdinalIgnoreCase)) return i;
        return -1;
    }

    /// <summary>Parses CSV text into records of fields (RFC 4180, with LF or CRLF line ends).</summary>
    internal static List<List<string>> ParseCsv(string path, string text)
    {
        var records = new List<List<string>>();
        var record = new List<string>();
        var field = new StringBuilder();
        int i = 0, line = 1;
        if (text.Length > 0 && text[0] == '\uFEFF') i = 1;
        bool inQuotes = false, fieldStarted = false;
        int quoteLine = 0;
        for (; i < text.Length; i++)
        {
            char c = text[i];
            if (inQuotes)
            {
                if (c == '"')
                {
                    if (i + 1 < text.Length && text[i + 1] == '"') { field.Append('"'); i++; }
                    else inQuotes = false;
                }
                else
                {
                    if (c == '\n') line++;
                    field.Append(c);
                }
                continue;
            }
            switch (c)
            {
                case '"' when field.Length == 0:
                    inQuotes = true;
                    fieldStarted = true;
                    quoteLine = line;
                    break;
                case ',':
                    record.Add(field.ToString());
                    field.Clear();
                    fieldStarted = false;
                    break;
                case '\r' when i + 1 < text.Length && text[i + 1] == '\n':
                    break;
                case '\n':
                    record.Add(field.ToString());
                    field.Clear();
                    fieldStarted = false;
                    records.Add(record);
                    record = [];
                    line++;
                    break;
                default:
                    field.Append(c);
                    break;
            }
        }
        if (inQuotes) throw new InvalidDataException($"{path}: unterminated quoted field starting on line {quoteLine}");
        if (field.Length > 0 || fieldStarted || record.Count > 0)
        {
            record.Add(field.ToString());
            records.Add(record);
        }
        return records;
    }

    private static List<string> ReadJsonl(string path, string text, string? column, bool promptMode)
    {
        var result = new List<string>();
        var lines = text.Split('\n');
        for (int n = 0; n < lines.Length; n++)
        {
            var line = lines[n].Trim();
            if (line.Length == 0) continue;
            if (n == 0 && line[0] == '\uFEFF') line = line[1..];
            JsonDocument doc;
            try { doc = JsonDocument.Parse(line); }
            catch (JsonException ex) { throw new InvalidDataException($"{path}: line {n + 1} is not valid JSON: {ex.Message}", ex); }
            using (doc)
            {
                var root = doc.RootElement;
                if (root.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{path}: line {n + 1} is not a JSON object");
                var names = root.EnumerateObject().Select(p => p.Name).ToList();
                int index = FindColumn(names, column);
                if (index < 0)
                    throw new InvalidDataException(
                        $"{path}: line {n + 1} has no field {(column is null ? "among " + string.Join(", ", PromptColumns) : "'" + column + "'")}; fields found: {string.Join(", ", names)}");
                var name = names[index];
                var value = root.GetProperty(name);
                string s = value.ValueKind == JsonValueKind.String ? value.GetString()! : value.GetRawText();
                if (promptMode && string.Equals(name, "instruction", StringComparison.OrdinalIgnoreCase))
                {
                    var input = Input(root);
                    if (!string.IsNullOrWhiteSpace(input)) s = s + "\n" + input;
                }
                result.Add(s);
            }
        }
        if (result.Count == 0) throw new InvalidDataException($"{path}: the file is empty");
        return result;
    }

    private static string? Input(JsonElement root)
    {
        foreach (var p in root.EnumerateObject())
        {
            if (string.Equals(p.Name, "input", StringComparison.OrdinalIgnoreCase) && p.Value.ValueKind == JsonValueKind.String)
                return p.Value.GetString();
        }
        foreach (var p in root.EnumerateObject())
        {
            if (string.Equals(p.Name, "instances", StringComparison.OrdinalIgnoreCase)
                && p.Value.ValueKind == JsonValueKind.Array && p.Value.GetArrayLength() > 0
                && p.Value[0].ValueKind == JsonValueKind.Object
                && p.Value[0].TryGetProperty("input", out var inp) && inp.ValueKind == JsonValueKind.String)
                return inp.GetString();
        }
        return null;
    }
}
