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

    /// <summary>
    /// Writes <c>"memory": {"PHASE": {"rss_mb", "peak_rss_mb", "seconds", "held_mb"}, ...}</c>, the per-phase account of a
    /// run, in phase order.
    /// </summary>
    internal static void WriteMemory(Utf8JsonWriter w, SafeTune.Runtime.MemoryAccount memory)
    {
        w.WriteStartObject("memory");
        foreach (var p in memory.Phases)
        {
            w.WriteStartObject(p.Phase);
            w.WriteNumber("rss_mb", Math.Round(p.RssMb, 1));
            w.WriteNumber("peak_rss_mb", Math.Round(p.PeakRssMb, 1));
            w.WriteNumber("seconds", Math.Round(p.Seconds, 2));
            if (p.HeldMb is { } h) w.WriteNumber("held_mb", Math.Round(h, 1));
            else w.WriteNull("held_mb");
            w.WriteEndObject();
        }
        w.WriteEndObject();
    }
}
