using System.ComponentModel;
using System.Globalization;
using SafeTune.Cli.Infrastructure;
using SafeTune.Safety.Metrics;
using SafeTune.Safety.Probes;
using SafeTune.Safety.Reports;
using Spectre.Console;
using Spectre.Console.Cli;

namespace SafeTune.Cli.Commands.Probe;

/// <summary>Arguments of <c>safetune probe eval</c>.</summary>
public sealed class ProbeEvalSettings : ProbeModelSettings
{
    /// <summary>Harmful prompt files.</summary>
    [CommandOption("--harmful <FILE>")]
    [Description("Harmful prompts: " + Safety.Data.PromptFile.SpecHelp + " Repeat for several files.")]
    public string[] Harmful { get; init; } = [];

    /// <summary>Harmless prompt files.</summary>
    [CommandOption("--harmless <FILE>")]
    [Description("Harmless prompts, same syntax (e.g. xstest_prompts.csv@label=safe). Repeat for several files.")]
    public string[] Harmless { get; init; } = [];

    /// <summary>ROC plot.</summary>
    [CommandOption("--roc <ROC.png>")]
    [Description("Also draw the ROC curve as a PNG, with the AUROC in the legend and the probe's threshold marked.")]
    public string? Roc { get; init; }

    /// <summary>JSON output.</summary>
    [CommandOption("--json")]
    [Description("Print {\"auroc\", \"tpr_at_1pct_fpr\", \"tpr_at_5pct_fpr\", \"accuracy\", \"ece\", \"n_harmful\", \"n_harmless\", \"threshold\", \"recall_at_threshold\", \"fpr_at_threshold\", \"roc\"}.")]
    public bool Json { get; init; }

    /// <inheritdoc/>
    public override ValidationResult Validate() =>
        Probe.Length == 0 ? ValidationResult.Error("--probe is required.")
        : Harmful.Length == 0 || Harmless.Length == 0 ? ValidationResult.Error("--harmful and --harmless are required.")
        : Roc is not null && !Roc.EndsWith(".png", StringComparison.OrdinalIgnoreCase) ? ValidationResult.Error($"--roc must name a .png file, not '{Roc}'.")
        : ValidationResult.Success();
}

/// <summary><c>safetune probe eval</c>: AUROC and TPR at low FPR of a probe on labelled prompt files.</summary>
public sealed class ProbeEvalCommand : Command<ProbeEvalSettings>
{
    /// <inheritdoc/>
    public override int Execute(CommandContext context, ProbeEvalSettings s, CancellationToken cancellationToken)
    {
        var probe = ProbeFile.Load(s.Probe);
        var ev = ProbeProgressDisplay.Run(s.Json, progress => ProbeTraining.Evaluate(probe, s.Harmful, s.Harmless, s.ModelPath, s.Tokenizer, progress));
        var m = ev.Metrics;
        if (s.Roc is { } roc)
        {
            var curve = BinaryMetrics.RocCurve([.. ev.Scores], [.. ev.Labels]);
            var label = $"{probe.Head.Kind.ToString().ToLowerInvariant()} probe, {m.Harmful} harmful vs {m.Harmless} harmless";
            RocPlot.Save(roc, [new RocSeries(label, curve, m.Auroc)], new OperatingPoint(m.Threshold, m.FalsePositiveRate, m.Recall),
                $"Probe ROC: {Path.GetFileName(s.Probe)}");
        }
        if (s.Json)
        {
            JsonOut.Write(w =>
            {
                w.WriteNumber("auroc", Math.Round(m.Auroc, 6));
                w.WriteNumber("tpr_at_1pct_fpr", Math.Round(m.TprAt1PctFpr, 6));
                w.WriteNumber("tpr_at_5pct_fpr", Math.Round(m.TprAt5PctFpr, 6));
                w.WriteNumber("accuracy", Math.Round(m.Accuracy, 6));
                w.WriteNumber("ece", Math.Round(m.Ece, 6));
                w.WriteNumber("n_harmful", m.Harmful);
                w.WriteNumber("n_harmless", m.Harmless);
                w.WriteNumber("threshold", Math.Round(m.Threshold, 6));
                w.WriteNumber("recall_at_threshold", Math.Round(m.Recall, 6));
                w.WriteNumber("fpr_at_threshold", Math.Round(m.FalsePositiveRate, 6));
                if (s.Roc is null) w.WriteNull("roc"); else w.WriteString("roc", s.Roc);
            });
            return ExitCodes.Ok;
        }
        var inv = CultureInfo.InvariantCulture;
        var t = new Table().AddColumns("metric", "value");
        t.AddRow("AUROC", m.Auroc.ToString("F3", inv));
        t.AddRow("TPR at 1% FPR", m.TprAt1PctFpr.ToString("F3", inv));
        t.AddRow("TPR at 5% FPR", m.TprAt5PctFpr.ToString("F3", inv));
        t.AddRow($"accuracy at {m.Threshold.ToString("G3", inv)}", m.Accuracy.ToString("F3", inv));
        t.AddRow($"recall / FPR at {m.Threshold.ToString("G3", inv)}", $"{m.Recall.ToString("F3", inv)} / {m.FalsePositiveRate.ToString("F3", inv)}");
        t.AddRow("calibration error (ECE)", m.Ece.ToString("F3", inv));
        t.AddRow("prompts", $"{m.Harmful} harmful, {m.Harmless} harmless");
        AnsiConsole.Write(t);
        if (s.Roc is not null) AnsiConsole.MarkupLine($"ROC curve -> {Markup.Escape(s.Roc)}");
        return ExitCodes.Ok;
    }
}
