using System.Collections;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Parquet.Serialization;

namespace SafeTune.Data;

/// <summary>The file formats <see cref="TabularFile"/> reads, chosen by extension.</summary>
public enum TabularFormat
{
    /// <summary><c>.csv</c>: RFC 4180, the first record is the header; every field is a string.</summary>
    Csv,
    /// <summary><c>.jsonl</c>: one JSON object per non-blank line.</summary>
    Jsonl,
    /// <summary><c>.parquet</c>: Apache Parquet (as the Hugging Face Hub stores data sets), nested columns included.</summary>
    Parquet,
    /// <summary><c>.txt</c>: one record per non-empty line, in the field <c>text</c>.</summary>
    Text,
}

/// <summary>
/// One record of a data file: its fields as JSON nodes and where it came from. <see cref="Position"/> is the 1-based line
/// the record starts on (CSV, JSONL, text) or the 1-based row number (Parquet).
/// </summary>
/// <param name="Path">The file.</param>
/// <param name="Format">The file's format.</param>
/// <param name="Position">The 1-based line (CSV: the line the record starts on) or, for Parquet, the 1-based row.</param>
/// <param name="Fields">The fields: strings for CSV and text; any JSON value for JSONL; for Parquet, strings, numbers,
/// booleans, arrays (list columns) and objects (struct and map columns); a missing or null value is absent or null.</param>
public sealed record TabularRecord(string Path, TabularFormat Format, int Position, JsonObject Fields)
{
    /// <summary>"line N" or, for Parquet, "row N".</summary>
    public string PositionText => (Format == TabularFormat.Parquet ? "row " : "line ") + Position.ToString(CultureInfo.InvariantCulture);

    /// <summary>"PATH: line N" (or "row N"), for messages.</summary>
    public string Location => $"{Path}: {PositionText}";

    /// <summary>The names of the fields present, in file order.</summary>
    public IReadOnlyList<string> FieldNames => [.. Fields.Select(p => p.Key)];

    /// <summary>The field called <paramref name="name"/> (an exact match first, then case-insensitive); null when absent or JSON null.</summary>
    public JsonNode? Get(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (Fields.TryGetPropertyValue(name, out var exact)) return exact;
        foreach (var (key, value) in Fields)
            if (string.Equals(key, name, StringComparison.OrdinalIgnoreCase)) return value;
        return null;
    }

    /// <summary>Whether a field called <paramref name="name"/> (case-insensitive) is present, even if null.</summary>
    public bool Has(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return Fields.Any(p => string.Equals(p.Key, name, StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>
    /// The field as text: a JSON string as itself, any other value as its JSON text, null when the field is absent or null.
    /// </summary>
    public string? GetText(string name) => TabularFile.Text(Get(name));
}

/// <summary>A whole data file: its column names and its records in file order.</summary>
/// <param name="Path">The file.</param>
/// <param name="Format">Its format.</param>
/// <param name="Columns">The column names: the CSV header, the Parquet schema's top-level fields, the JSONL fields in the
/// order first seen, or <c>text</c>.</param>
/// <param name="Records">The records (at least one).</param>
public sealed record TabularData(string Path, TabularFormat Format, IReadOnlyList<string> Columns, IReadOnlyList<TabularRecord> Records)
{
    /// <summary>Where the column names come from, for messages: "line 1 (the header)", "the schema" or "the records".</summary>
    public string ColumnsLocation => Format switch
    {
        TabularFormat.Csv => "line 1 (the header)",
        TabularFormat.Parquet => "the schema",
        _ => "the records",
    };

    /// <summary>The column called <paramref name="name"/> as spelled in the file (exact match first, then case-insensitive), or null.</summary>
    public string? FindColumn(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return Columns.FirstOrDefault(c => c == name) ?? Columns.FirstOrDefault(c => string.Equals(c.Trim(), name, StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>"columns found: a, b, c" for error messages.</summary>
    public string ColumnsFound => (Format == TabularFormat.Jsonl ? "fields found: " : "columns found: ") + string.Join(", ", Columns);
}

/// <summary>
/// Reads data files (.csv, .jsonl, .parquet, .txt) into records whose fields are JSON nodes, each with its source position.
/// The one place where file formats are parsed: prompt lists (<c>PromptFile</c>), judge items and fine-tuning data sets are all
/// read through it.
/// </summary>
public static class TabularFile
{
    /// <summary>The extensions read, lower case.</summary>
    public static IReadOnlyList<string> Extensions { get; } = [".csv", ".jsonl", ".parquet", ".txt"];

    /// <summary>The format of <paramref name="path"/>, from its extension.</summary>
    /// <exception cref="InvalidDataException">The extension is none of <see cref="Extensions"/>.</exception>
    public static TabularFormat FormatOf(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var ext = Path.GetExtension(path).ToLowerInvariant();
        return ext switch
        {
            ".csv" => TabularFormat.Csv,
            ".jsonl" => TabularFormat.Jsonl,
            ".parquet" => TabularFormat.Parquet,
            ".txt" => TabularFormat.Text,
            _ => throw new InvalidDataException($"{path}: unknown extension '{ext}' (expected {string.Join(", ", Extensions)})"),
        };
    }

    /// <summary>Reads every record of <paramref name="path"/>.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The extension is unknown, the file is empty or has no data rows, or a record is
    /// malformed (the message names the file and the line or row).</exception>
    public static TabularData Read(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (Public.PublicData.IsDataName(path)) path = Public.PublicData.Resolve(path);
        var format = FormatOf(path);
        if (Directory.Exists(path)) throw new InvalidDataException($"{path}: is a folder, not a data file");
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such file", path);
        var data = format switch
        {
            TabularFormat.Csv => ReadCsv(path, ReadText(path)),
            TabularFormat.Jsonl => ReadJsonl(path, ReadText(path)),
            TabularFormat.Parquet => ReadParquet(path),
            _ => ReadLines(path, ReadText(path)),
        };
        if (data.Records.Count == 0)
            throw new InvalidDataException(format == TabularFormat.Csv && data.Columns.Count > 0
                ? $"{path}: the file has a header but no data rows"
                : $"{path}: the file has no rows");
        return data;
    }

    /// <summary>
    /// Reads CSV text that does not come from a file of its own (a resource embedded in an assembly) as <see cref="Read"/>
    /// reads a <c>.csv</c> file; <paramref name="name"/> stands for the file in messages and in each record.
    /// </summary>
    /// <exception cref="InvalidDataException">The text is empty or has no data rows, or a record is malformed.</exception>
    public static TabularData ReadCsvText(string name, string text)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length > 0 && text[0] == '\uFEFF') text = text[1..];
        if (string.IsNullOrWhiteSpace(text)) throw new InvalidDataException($"{name}: the file is empty");
        var data = ReadCsv(name, text);
        if (data.Records.Count == 0) throw new InvalidDataException($"{name}: the file has a header but no data rows");
        return data;
    }

    /// <summary>A JSON node as text: a string as itself, null as null, anything else as its JSON text.</summary>
    public static string? Text(JsonNode? node) => node switch
    {
        null => null,
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
        JsonValue v when v.GetValueKind() == JsonValueKind.Null => null,
        _ => node.ToJsonString(),
    };

    private static string ReadText(string path)
    {
        var text = File.ReadAllText(path, Encoding.UTF8);
        if (text.Length > 0 && text[0] == '\uFEFF') text = text[1..];
        if (string.IsNullOrWhiteSpace(text)) throw new InvalidDataException($"{path}: the file is empty");
        return text;
    }

    private static TabularData ReadLines(string path, string text)
    {
        var records = new List<TabularRecord>();
        var lines = text.Split('\n');
        for (int n = 0; n < lines.Length; n++)
        {
            var line = lines[n].TrimEnd('\r');
            if (string.IsNullOrWhiteSpace(line)) continue;
            records.Add(new TabularRecord(path, TabularFormat.Text, n + 1, new JsonObject { ["text"] = line }));
        }
        return new TabularData(path, TabularFormat.Text, ["text"], records);
    }

    private static TabularData ReadCsv(string path, string text)
    {
        var rows = Csv.Parse(path, text);
        if (rows.Count == 0) throw new InvalidDataException($"{path}: the file is empty");
        var header = rows[0].Fields;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var name in header)
            if (!seen.Add(name)) throw new InvalidDataException($"{path}: line 1 (the header) names the column '{name}' twice");
        var records = new List<TabularRecord>(rows.Count - 1);
        for (int r = 1; r < rows.Count; r++)
        {
            var (fields, line) = rows[r];
            if (fields.Count == 1 && fields[0].Length == 0) continue; // a blank line
            if (fields.Count > header.Count && fields.Skip(header.Count).Any(f => f.Length > 0))
                throw new InvalidDataException($"{path}: line {line} has {fields.Count} fields but the header has {header.Count}");
            var obj = new JsonObject();
            for (int c = 0; c < header.Count; c++) obj[header[c]] = c < fields.Count ? fields[c] : "";
            records.Add(new TabularRecord(path, TabularFormat.Csv, line, obj));
        }
        return new TabularData(path, TabularFormat.Csv, header, records);
    }

    private static TabularData ReadJsonl(string path, string text)
    {
        var records = new List<TabularRecord>();
        var columns = new List<string>();
        var known = new HashSet<string>(StringComparer.Ordinal);
        var lines = text.Split('\n');
        for (int n = 0; n < lines.Length; n++)
        {
            var line = lines[n].Trim();
            if (line.Length == 0) continue;
            JsonNode? node;
            try { node = JsonNode.Parse(line); }
            catch (JsonException e) { throw new InvalidDataException($"{path}: line {n + 1} is not valid JSON: {e.Message}", e); }
            if (node is not JsonObject obj) throw new InvalidDataException($"{path}: line {n + 1} is not a JSON object");
            foreach (var (key, _) in obj)
                if (known.Add(key)) columns.Add(key);
            records.Add(new TabularRecord(path, TabularFormat.Jsonl, n + 1, obj));
        }
        return new TabularData(path, TabularFormat.Jsonl, columns, records);
    }

    private static TabularData ReadParquet(string path)
    {
        if (new FileInfo(path).Length == 0) throw new InvalidDataException($"{path}: the file is empty");
        DeserializationResult<Dictionary<string, object>> result;
        try
        {
            using var stream = File.OpenRead(path);
            result = ParquetSerializer.DeserializeUntypedAsync(stream).GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is not (OutOfMemoryException or OperationCanceledException or UnauthorizedAccessException))
        {
            throw new InvalidDataException($"{path}: not a readable Parquet file ({e.Message})", e);
        }
        var columns = result.Schema.Fields.Select(f => f.Name).ToList();
        var records = new List<TabularRecord>(result.Data.Count);
        for (int r = 0; r < result.Data.Count; r++)
        {
            var row = result.Data[r];
            var obj = new JsonObject();
            foreach (var column in columns) obj[column] = row.TryGetValue(column, out var v) ? ToNode(v) : null;
            records.Add(new TabularRecord(path, TabularFormat.Parquet, r + 1, obj));
        }
        return new TabularData(path, TabularFormat.Parquet, columns, records);
    }

    /// <summary>A value of Parquet.Net's untyped reader as a JSON node: structs become objects, lists arrays.</summary>
    private static JsonNode? ToNode(object? value)
    {
        switch (value)
        {
            case null: return null;
            case string s: return JsonValue.Create(s);
            case ReadOnlyMemory<char> chars: return JsonValue.Create(chars.ToString());
            case bool b: return JsonValue.Create(b);
            case byte[] bytes: return Bytes(bytes);
            case ReadOnlyMemory<byte> memory: return Bytes(memory.ToArray());
            case float f: return float.IsFinite(f) ? JsonValue.Create(f) : JsonValue.Create(f.ToString(CultureInfo.InvariantCulture));
            case double d: return double.IsFinite(d) ? JsonValue.Create(d) : JsonValue.Create(d.ToString(CultureInfo.InvariantCulture));
            case sbyte or byte or short or ushort or int or uint or long or ulong or decimal:
                return JsonNode.Parse(Convert.ToString(value, CultureInfo.InvariantCulture)!);
            case DateTime t: return JsonValue.Create(t.ToString("O", CultureInfo.InvariantCulture));
            case DateTimeOffset t: return JsonValue.Create(t.ToString("O", CultureInfo.InvariantCulture));
            case IDictionary<string, object?> fields:
            {
                var obj = new JsonObject();
                foreach (var (k, v) in fields) obj[k] = ToNode(v);
                return obj;
            }
            case IDictionary map:
            {
                var obj = new JsonObject();
                foreach (DictionaryEntry e in map) obj[Convert.ToString(e.Key, CultureInfo.InvariantCulture) ?? ""] = ToNode(e.Value);
                return obj;
            }
            case IEnumerable items:
            {
                var array = new JsonArray();
                foreach (var item in items) array.Add(ToNode(item));
                return array;
            }
            default: return JsonValue.Create(Convert.ToString(value, CultureInfo.InvariantCulture));
        }
    }

    /// <summary>A binary value: its text when it is valid UTF-8 (strings written without a string annotation), else base64.</summary>
    private static JsonValue Bytes(byte[] bytes)
    {
        try { return JsonValue.Create(new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes)); }
        catch (DecoderFallbackException) { return JsonValue.Create(Convert.ToBase64String(bytes)); }
    }
}

/// <summary>An RFC 4180 CSV parser that records the line each record starts on.</summary>
internal static class Csv
{
    /// <summary>Parses CSV text (LF or CRLF line ends; quoted fields may hold commas, doubled quotes and newlines).</summary>
    /// <returns>The records with the 1-based line each starts on.</returns>
    /// <exception cref="InvalidDataException">A quoted field is never closed.</exception>
    public static List<(List<string> Fields, int Line)> Parse(string path, string text)
    {
        var records = new List<(List<string>, int)>();
        var record = new List<string>();
        var field = new StringBuilder();
        int i = 0, line = 1, recordLine = 1;
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
                    records.Add((record, recordLine));
                    record = [];
                    line++;
                    recordLine = line;
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
            records.Add((record, recordLine));
        }
        return records;
    }
}
