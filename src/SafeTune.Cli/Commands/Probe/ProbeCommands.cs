using System.ComponentModel;
using System.Globalization;
using SafeTune.Cli.Infrastructure;
using SafeTune.Safety.Activations;
using SafeTune.Safety.Probes;
using Spectre.Console;
using Spectre.Console.Cli;

namespace SafeTune.Cli.Commands.Probe;

/// <summary>Arguments of <c>safetune probe train</c>.</summary>
public sealed class ProbeTrainSettings : CommandSettings
{
    /// <summary>The model.</summary>
    [CommandOption("--model <M.onnx>")]
    [Description("The ONNX model whose prompt activations the probe reads.")]
    public string Model { get; init; } = "";

    /// <summary>The tokenizer.</summary>
    [CommandOption("--tokenizer <T>")]
    [Description("tokenizer.json, vocab.txt, vocab.json + merges.txt folder, tokenizer.model, or a tiktoken name.")]
    public string Tokenizer { get; init; } = "";

    /// <summary>Harmful prompt files.</summary>
    [CommandOption("--harmful <FILE>")]
    [Description("Harmful prompts: " + Safety.Data.PromptFile.SpecHelp + " Repeat for several files.")]
    public string[] Harmful { get; init; } = [];

    /// <summary>Harmless prompt files.</summary>
    [CommandOption("--harmless <FILE>")]
    [Description("Harmless prompts, same syntax. Repeat for several files.")]
    public string[] Harmless { get; init; } = [];

    /// <summary>Layers.</summary>
    [CommandOption("--layers <LAYERS>")]
    [Description("all (default) or a comma-separated list of layer indices, e.g. 3,4,5.")]
    public string Layers { get; init; } = "all";

    /// <summary>Pooling.</summary>
    [CommandOption("--pool <POOL>")]
    [Description("mean (mean over prompt tokens, then layers; default) or last (last prompt token).")]
    public string Pool { get; init; } = "mean";

    /// <summary>Head.</summary>
    [CommandOption("--head <HEAD>")]
    [Description("logistic (L2, regularisation by cross-validation; default).")]
    public string Head { get; init; } = "logistic";

    /// <summary>Output.</summary>
    [CommandOption("--out <PROBE.json>")]
    [Description("Where to write the probe.")]
    public string Out { get; init; } = "";

    /// <summary>JSON output.</summary>
    [CommandOption("--json")]
    [Description("Print {\"out\", \"lambda\", \"dimension\", \"n_harmful\", \"n_harmless\"} on stdout.")]
    public bool Json { get; init; }

    /// <inheritdoc/>
    public override ValidationResult Validate()
    {
        if (Model.Length == 0) return ValidationResult.Error("--model is required.");
        if (Tokenizer.Length == 0) return ValidationResult.Error("--tokenizer is required.");
        if (Harmful.Length == 0 || Harmless.Length == 0) return ValidationResult.Error("--harmful and --harmless are required.");
        if (Out.Length == 0) return ValidationResult.Error("--out is required.");
        if (Pool is not ("mean" or "last")) return ValidationResult.Error($"--pool must be mean or last, not '{Pool}'.");
        if (Head != "logistic") return ValidationResult.Error($"--head '{Head}' is not available; use logistic.");
        if (Layers != "all" && !Layers.Split(',').All(p => int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out _)))
            return ValidationResult.Error($"--layers must be all or a list like 3,4,5, not '{Layers}'.");
        return ValidationResult.Success();
    }
}

/// <summary><c>safetune probe train</c>: fit an activation probe on harmful and harmless prompts.</summary>
public sealed class ProbeTrainCommand : Command<ProbeTrainSettings>
{
    /// <inheritdoc/>
    public override int Execute(CommandContext context, ProbeTrainSettings s, CancellationToken cancellationToken)
    {
        var probe = ProbeTraining.Train(new ProbeTrainOptions
        {
            ModelPath = s.Model,
            Tokenizer = s.Tokenizer,
            Harmful = s.Harmful,
            Harmless = s.Harmless,
            Layers = s.Layers == "all" ? null : [.. s.Layers.Split(',').Select(p => int.Parse(p, CultureInfo.InvariantCulture))],
            Pooling = s.Pool == "last" ? ActivationPooling.LastToken : ActivationPooling.MeanTokensThenLayers,
        });
        probe.Save(s.Out);
        int harmful = s.Harmful.Sum(f => Safety.Data.PromptFile.Read(f).Count), harmless = s.Harmless.Sum(f => Safety.Data.PromptFile.Read(f).Count);
        if (s.Json)
            JsonOut.Write(w =>
            {
                w.WriteString("out", s.Out);
                w.WriteNumber("lambda", probe.Head.Lambda);
                w.WriteNumber("dimension", probe.Head.Dimension);
                w.WriteNumber("n_harmful", harmful);
                w.WriteNumber("n_harmless", harmless);
            });
        else
            AnsiConsole.MarkupLine(string.Create(CultureInfo.InvariantCulture,
                $"probe on {probe.Head.Dimension} features from {harmful} harmful and {harmless} harmless prompts, lambda {probe.Head.Lambda:G3} -> {Markup.Escape(s.Out)}"));
        return ExitCodes.Ok;
    }
}

/// <summary>Arguments of <c>safetune probe eval</c>.</summary>
public sealed class ProbeEvalSettings : CommandSettings
{
    /// <summary>The probe.</summary>
    [CommandOption("--probe <PROBE.json>")]
    [Description("A probe written by probe train.")]
    public string Probe { get; init; } = "";

    /// <summary>Harmful prompt files.</summary>
    [CommandOption("--harmful <FILE>")]
    [Description("Harmful prompts: " + Safety.Data.PromptFile.SpecHelp + " Repeat for several files.")]
    public string[] Harmful { get; init; } = [];

    /// <summary>Harmless prompt files.</summary>
    [CommandOption("--harmless <FILE>")]
    [Description("Harmless prompts, same syntax (e.g. xstest_prompts.csv@label=safe). Repeat for several files.")]
    public string[] Harmless { get; init; } = [];

    /// <summary>Model override.</summary>
    [CommandOption("--model <M.onnx>")]
    [Description("The model (default: the one recorded in the probe; its SHA-256 must match).")]
    public string? Model { get; init; }

    /// <summary>Tokenizer override.</summary>
    [CommandOption("--tokenizer <T>")]
    [Description("The tokenizer (default: the one recorded in the probe).")]
    public string? Tokenizer { get; init; }

    /// <summary>JSON output.</summary>
    [CommandOption("--json")]
    [Description("Print {\"auroc\", \"tpr_at_1pct_fpr\", \"tpr_at_5pct_fpr\", \"accuracy\", \"ece\", \"n_harmful\", \"n_harmless\"}.")]
    public bool Json { get; init; }

    /// <inheritdoc/>
    public override ValidationResult Validate() =>
        Probe.Length == 0 ? ValidationResult.Error("--probe is required.")
        : Harmful.Length == 0 || Harmless.Length == 0 ? ValidationResult.Error("--harmful and --harmless are required.")
        : ValidationResult.Success();
}

/// <summary><c>safetune probe eval</c>: AUROC and TPR at low FPR of a probe on labelled prompt files.</summary>
public sealed class ProbeEvalCommand : Command<ProbeEvalSettings>
{
    /// <inheritdoc/>
    public override int Execute(CommandContext context, ProbeEvalSettings s, CancellationToken cancellationToken)
    {
        var probe = ProbeFile.Load(s.Probe);
        var m = ProbeTraining.Evaluate(probe, s.Harmful, s.Harmless, s.Model, s.Tokenizer);
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
            });
            return ExitCodes.Ok;
        }
        var inv = CultureInfo.InvariantCulture;
        var t = new Table().AddColumns("metric", "value");
        t.AddRow("AUROC", m.Auroc.ToString("F3", inv));
        t.AddRow("TPR at 1% FPR", m.TprAt1PctFpr.ToString("F3", inv));
        t.AddRow("TPR at 5% FPR", m.TprAt5PctFpr.ToString("F3", inv));
        t.AddRow($"accuracy at {probe.Threshold.ToString("G3", inv)}", m.Accuracy.ToString("F3", inv));
        t.AddRow("calibration error (ECE)", m.Ece.ToString("F3", inv));
        t.AddRow("prompts", $"{m.Harmful} harmful, {m.Harmless} harmless");
        AnsiConsole.Write(t);
        return ExitCodes.Ok;
    }
}
