using System.Text.Encodings.Web;
using System.Text.Json;

namespace SafeTune.Cli.Infrastructure;

/// <summary>Writes the single JSON object a <c>--json</c> command prints on stdout.</summary>
public static class JsonOut
{
    /// <summary>Writes one JSON object built by <paramref name="write"/>, followed by a newline.</summary>
    public static void Write(Action<Utf8JsonWriter> write)
    {
        using var stdout = Console.OpenStandardOutput();
        using (var w = new Utf8JsonWriter(stdout, new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            write(w);
            w.WriteEndObject();
        }
        stdout.Write("\n"u8);
    }

    /// <summary>Writes a shape: numbers for known sizes, strings for symbols, null for unknown dims.</summary>
    public static void WriteShape(Utf8JsonWriter w, string name, IReadOnlyList<object>? shape)
    {
        if (shape is null) { w.WriteNull(name); return; }
        w.WriteStartArray(name);
        foreach (var d in shape)
        {
            switch (d)
            {
                case long n: w.WriteNumberValue(n); break;
                case "?": w.WriteNullValue(); break;
                default: w.WriteStringValue(d.ToString()); break;
            }
        }
        w.WriteEndArray();
    }
}
