using System.ComponentModel;
using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using SafeTune.Cli.Infrastructure;
using SafeTune.Onnx;
using SafeTune.Safety.Data;
using SafeTune.Safety.Probes;
using Spectre.Console;
using Spectre.Console.Cli;

namespace SafeTune.Cli.Commands.Probe;

/// <summary>Arguments of <c>safetune probe score</c>.</summary>
public sealed class ProbeScoreSettings : ProbeModelSettings
{
    /// <summary>Prompt files.</summary>
    [CommandOption("--data <FILE>")]
    [Description("Prompts to score: " + Safety.Data.PromptFile.SpecHelp + " Repeat for several files.")]
    public string[] Data { get; init; } = [];

    /// <summary>Per-prompt output.</summary>
    [CommandOption("--out <SCORES.jsonl>")]
    [Description("Write one line per prompt: {\"index\", \"prompt\", \"probability\", \"flagged\"}.")]
    public string? Out { get; init; }

    /// <summary>JSON output.</summary>
    [CommandOption("--json")]
    [Description("Print {\"n\", \"n_flagged\", \"flagged_share\", \"mean_probability\", \"threshold\", \"out\", \"scores\": [[{\"index\", \"prompt\", \"probability\", \"flagged\"}]]}.")]
    public bool Json { get; init; }

    /// <inheritdoc/>
    public override ValidationResult Validate() =>
        Probe.Length == 0 ? ValidationResult.Error("--probe is required.")
        : Data.Length == 0 ? ValidationResult.Error("--data is required.")
        : ValidationResult.Success();
}

/// <summary><c>safetune probe score</c>: the harm probability and flag of every prompt in a file.</summary>
public sealed class ProbeScoreCommand : Command<ProbeScoreSettings>
{
    private const int ShownInText = 20;

    /// <inheritdoc/>
    public override int Execute(CommandContext context, ProbeScoreSettings s, CancellationToken cancellationToken)
    {
        var probe = ProbeFile.Load(s.Probe);
        var prompts = s.Data.SelectMany(PromptFile.Read).ToList();
        if (prompts.Count == 0) throw new InvalidDataException($"{string.Join(", ", s.Data)}: no prompts to score.");
        var scores = ProbeProgressDisplay.Run(s.Json, progress => ProbeTraining.Score(probe, prompts, s.ModelPath, s.Tokenizer, progress));
        double threshold = probe.Threshold;
        int flagged = scores.Count(p => p >= threshold);
        double mean = scores.Average();
        if (s.Out is { } path) AtomicFile.WriteAllText(path, Lines(prompts, scores, threshold));
        if (s.Json)
        {
            JsonOut.Write(w =>
            {
                w.WriteNumber("n", prompts.Count);
                w.WriteNumber("n_flagged", flagged);
                w.WriteNumber("flagged_share", Math.Round((double)flagged / prompts.Count, 6));
                w.WriteNumber("mean_probability", Math.Round(mean, 6));
                w.WriteNumber("threshold", Math.Round(threshold, 6));
                if (s.Out is null) w.WriteNull("out"); else w.WriteString("out", s.Out);
                w.WriteStartArray("scores");
                for (int i = 0; i < prompts.Count; i++) WriteScore(w, i, prompts[i], scores[i], threshold);
                w.WriteEndArray();
            });
            return ExitCodes.Ok;
        }
        var inv = CultureInfo.InvariantCulture;
        AnsiConsole.MarkupLine(Markup.Escape(string.Create(inv,
            $"{flagged} of {prompts.Count} prompts flagged ({(double)flagged / prompts.Count:P1}) at threshold {threshold:G4}; mean harm probability {mean:F3}")));
        var table = new Table().AddColumns("#", "probability", "flagged", "prompt");
        foreach (var i in Enumerable.Range(0, prompts.Count).OrderByDescending(i => scores[i]).ThenBy(i => i).Take(ShownInText))
            table.AddRow(i.ToString(inv), scores[i].ToString("F3", inv), scores[i] >= threshold ? "yes" : "no", Markup.Escape(Shorten(prompts[i])));
        AnsiConsole.Write(table);
        if (prompts.Count > ShownInText) AnsiConsole.MarkupLine($"(the {ShownInText} highest of {prompts.Count}; --out writes every score)");
        if (s.Out is not null) AnsiConsole.MarkupLine($"scores -> {Markup.Escape(s.Out)}");
        return ExitCodes.Ok;
    }

    private static string Lines(List<string> prompts, double[] scores, double threshold)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < prompts.Count; i++)
        {
            using var stream = new MemoryStream();
            using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
                WriteScore(w, i, prompts[i], scores[i], threshold);
            sb.Append(Encoding.UTF8.GetString(stream.ToArray())).Append('\n');
        }
        return sb.ToString();
    }

    private static void WriteScore(Utf8JsonWriter w, int index, string prompt, double probability, double threshold)
    {
        w.WriteStartObject();
        w.WriteNumber("index", index);
        w.WriteString("prompt", prompt);
        w.WriteNumber("probability", Math.Round(probability, 6));
        w.WriteBoolean("flagged", probability >= threshold);
        w.WriteEndObject();
    }

    private static string Shorten(string s)
    {
        var one = s.ReplaceLineEndings(" ");
        return one.Length <= 80 ? one : one[..77] + "...";
    }
}
