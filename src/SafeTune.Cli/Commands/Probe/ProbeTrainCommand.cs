using System.ComponentModel;
using System.Globalization;
using SafeTune.Cli.Infrastructure;
using SafeTune.Models.Chat;
using SafeTune.Models.Tokenization;
using SafeTune.Safety.Activations;
using SafeTune.Safety.Probes;
using Spectre.Console;
using Spectre.Console.Cli;

namespace SafeTune.Cli.Commands.Probe;

/// <summary>Arguments of <c>safetune probe train</c>.</summary>
public sealed class ProbeTrainSettings : CommandSettings
{
    [CommandOption("--model <M.onnx>")]
    [Description("The ONNX model whose prompt activations the probe reads. demo (or builtin:demo) is the demo model, builtin:minilm the pretrained all-MiniLM-L6-v2; with either, --tokenizer defaults to its own. An ONNX Runtime GenAI or Optimum model folder is read as generate reads it, its own tokenizer the default.")]
    public string Model { get; init; } = "";

    [CommandOption("--tokenizer <T>")]
    [Description("tokenizer.json, vocab.txt, vocab.json + merges.txt folder, tokenizer.model, or a tiktoken name.")]
    public string Tokenizer { get; init; } = "";

    /// <summary>Chat template.</summary>
    [CommandOption("--template <NAME>")]
    [Description("Render each prompt as one user message up to the assistant header: chatml, llama3, phi3 or plain; raw reads the text alone. Default: the model's own template beside the tokenizer, else the raw text.")]
    public string? Template { get; init; }

    /// <summary>Harmful prompt files.</summary>
    [CommandOption("--harmful <FILE>")]
    [Description("Harmful prompts: " + Safety.Data.PromptFile.SpecHelp + " Repeat for several files.")]
    public string[] Harmful { get; init; } = [];

    /// <summary>Harmless prompt files.</summary>
    [CommandOption("--harmless <FILE>")]
    [Description("Harmless prompts, same syntax. Repeat for several files.")]
    public string[] Harmless { get; init; } = [];

    [CommandOption("--layers <LAYERS>")]
    [Description("all (default) or a comma-separated list of layer indices, e.g. 3,4,5.")]
    public string Layers { get; init; } = "all";

    /// <summary>Pooling.</summary>
    [CommandOption("--pool <POOL>")]
    [Description("mean (mean over prompt tokens, then layers; default), last (last prompt token), concat (mean over prompt tokens per layer, the layers concatenated) or attention (each token's layers concatenated, weighted by the softmax of a learned query's scores over the prompt's tokens; the query is fitted first, then the head).")]
    public string Pool { get; init; } = "mean";

    [CommandOption("--head <HEAD>")]
    [Description("logistic (L2, regularisation by 5-fold cross-validation; default) or mlp (d -> 512 -> ReLU -> 2, AdamW, early stopping on a validation split).")]
    public string Head { get; init; } = "logistic";

    /// <summary>MLP width.</summary>
    [CommandOption("--hidden <N>")]
    [Description("Hidden width of the mlp head (default 512).")]
    public int Hidden { get; init; } = 512;

    [CommandOption("--weight-decay <W>")]
    [Description("AdamW weight decay of the mlp head (default 0.01, the paper's; 1 carries best to unseen wording on MiniLM, see the README's transfer study).")]
    public double WeightDecay { get; init; } = 0.01;

    /// <summary>Prompt length limit.</summary>
    [CommandOption("--max-length <N>")]
    [Description("The longest prompt read, in tokens (default 128, at most the model's context). A longer prompt is cut, not refused: rendered with a template it keeps its last N tokens (the assistant header), raw text its first N.")]
    public int MaxLength { get; init; } = 128;

    /// <summary>Threshold calibration.</summary>
    [CommandOption("--target-recall <R>")]
    [Description("Hold out a stratified 20% of the prompts and set the threshold to reach recall R on them (0 < R <= 1). Default: threshold 0.5.")]
    public double? TargetRecall { get; init; }

    /// <summary>Calibration set, harmful side.</summary>
    [CommandOption("--calibrate-harmful <FILE>")]
    [Description("With --target-recall: set the threshold on these harmful prompts (a set worded unlike the training prompts) instead of a held-out split; every training prompt then fits the head. Needs --calibrate-harmless. Repeat for several files.")]
    public string[] CalibrateHarmful { get; init; } = [];

    /// <summary>Calibration set, harmless side.</summary>
    [CommandOption("--calibrate-harmless <FILE>")]
    [Description("Harmless prompts of the calibration set (its false-positive rate is recorded with the threshold). Repeat for several files.")]
    public string[] CalibrateHarmless { get; init; } = [];

    [CommandOption("--seed <N>")]
    [Description("Seed of the splits and of the mlp head's initial weights (default 0).")]
    public int Seed { get; init; }

    /// <summary>Output.</summary>
    [CommandOption("--out <PROBE.json>")]
    [Description("Where to write the probe.")]
    public string Out { get; init; } = "";

    /// <summary>JSON output.</summary>
    [CommandOption("--json")]
    [Description("Print {\"out\", \"head\", \"dimension\", \"lambda\", \"epochs\", \"threshold\", \"validation_recall\", \"validation_fpr\", \"n_harmful\", \"n_harmless\", \"n_duplicates\", \"n_conflicts\", \"template\", \"attention_epoch\"} on stdout (attention_epoch: the epoch whose attention query was kept, 0 for the zero query; null unless --pool attention).")]
    public bool Json { get; init; }

    /// <inheritdoc/>
    public override ValidationResult Validate()
    {
        if (Model.Length == 0) return ValidationResult.Error("--model is required.");
        if (Tokenizer.Length == 0 && !ModelSource.IsNamed(Model) && Models.Generation.DecoderFolder.TokenizerOf(Model) is null) return ValidationResult.Error("--tokenizer is required.");
        if (Harmful.Length == 0 || Harmless.Length == 0) return ValidationResult.Error("--harmful and --harmless are required.");
        if (Out.Length == 0) return ValidationResult.Error("--out is required.");
        if (Pool is not ("mean" or "last" or "concat" or "attention")) return ValidationResult.Error($"--pool must be mean, last, concat or attention, not '{Pool}'.");
        if (Head is not ("logistic" or "mlp")) return ValidationResult.Error($"--head must be logistic or mlp, not '{Head}'.");
        if (Template is not null && Template != "raw" && !ChatTemplates.Names.Contains(Template))
            return ValidationResult.Error($"--template must be one of {string.Join(", ", ChatTemplates.Names)} or raw, not '{Template}'.");
        if (Hidden < 1) return ValidationResult.Error($"--hidden must be at least 1, not {Hidden}.");
        if (!(WeightDecay >= 0) || double.IsInfinity(WeightDecay))
            return ValidationResult.Error($"--weight-decay must be a finite number of at least 0, not {WeightDecay.ToString(CultureInfo.InvariantCulture)}.");
        if (WeightDecay != 0.01 && Head != "mlp") return ValidationResult.Error("--weight-decay applies to --head mlp only.");
        if (MaxLength < 1) return ValidationResult.Error($"--max-length must be at least 1, not {MaxLength}.");
        if (TargetRecall is { } r && !(r > 0 && r <= 1)) return ValidationResult.Error($"--target-recall must lie in (0, 1], not {r.ToString(CultureInfo.InvariantCulture)}.");
        if ((CalibrateHarmful.Length > 0) != (CalibrateHarmless.Length > 0))
            return ValidationResult.Error("--calibrate-harmful and --calibrate-harmless go together.");
        if (CalibrateHarmful.Length > 0 && TargetRecall is null) return ValidationResult.Error("--calibrate-harmful needs --target-recall.");
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
        var named = ModelSource.Named(s.Model);
        var tokenizer = s.Tokenizer.Length > 0 ? s.Tokenizer : named?.Tokenizer ?? Models.Generation.DecoderFolder.TokenizerOf(s.Model)!;
        var template = TemplateChoice.Resolve(s.Template, tokenizer, TokenizerLoader.Load(tokenizer), fallback: null);
        TemplateNotice.Print(template, s.Json);
        var options = new ProbeTrainOptions
        {
            ModelPath = named?.ModelPath ?? s.Model,
            Tokenizer = tokenizer,
            ChatTemplate = template.Template,
            Harmful = s.Harmful,
            Harmless = s.Harmless,
            Layers = s.Layers == "all" ? null : [.. s.Layers.Split(',').Select(p => int.Parse(p, CultureInfo.InvariantCulture))],
            Pooling = s.Pool switch
            {
                "last" => ActivationPooling.LastToken,
                "concat" => ActivationPooling.MeanTokensConcatLayers,
                "attention" => ActivationPooling.AttentionWeighted,
                _ => ActivationPooling.MeanTokensThenLayers,
            },
            MaxLength = s.MaxLength,
            CalibrationHarmful = s.CalibrateHarmful,
            CalibrationHarmless = s.CalibrateHarmless,
            Fit = new ProbeHeadOptions
            {
                Head = s.Head == "mlp" ? ProbeHeadKind.Mlp : ProbeHeadKind.Logistic,
                Mlp = new MlpTrainOptions { HiddenSize = s.Hidden, WeightDecay = s.WeightDecay },
                TargetRecall = s.TargetRecall,
                Seed = s.Seed,
            },
        };
        var r = ProbeProgressDisplay.Run(s.Json, progress => ProbeTraining.Train(options, progress));
        r.Probe.Save(s.Out);
        double? lambda = r.Fitted.CrossValidation?.BestLambda;
        int? epochs = r.Fitted.Mlp?.BestEpoch;
        var cal = r.Probe.Calibration;
        if (s.Json)
        {
            JsonOut.Write(w =>
            {
                w.WriteString("out", s.Out);
                w.WriteString("head", s.Head);
                w.WriteNumber("dimension", r.Probe.Head.Dimension);
                if (lambda is { } l) w.WriteNumber("lambda", l); else w.WriteNull("lambda");
                if (epochs is { } e) w.WriteNumber("epochs", e); else w.WriteNull("epochs");
                w.WriteNumber("threshold", Math.Round(r.Probe.Threshold, 6));
                if (cal is null) { w.WriteNull("validation_recall"); w.WriteNull("validation_fpr"); }
                else { w.WriteNumber("validation_recall", Math.Round(cal.Recall, 6)); w.WriteNumber("validation_fpr", Math.Round(cal.FalsePositiveRate, 6)); }
                w.WriteNumber("n_harmful", r.Harmful);
                w.WriteNumber("n_harmless", r.Harmless);
                w.WriteNumber("n_duplicates", r.Duplicates);
                w.WriteNumber("n_conflicts", r.Conflicts);
                w.WriteString("template", template.Name);
                if (r.Fitted.Attention is { } a) w.WriteNumber("attention_epoch", a.BestEpoch); else w.WriteNull("attention_epoch");
            });
            return ExitCodes.Ok;
        }
        var inv = CultureInfo.InvariantCulture;
        var fit = lambda is { } lam ? $"lambda {lam.ToString("G3", inv)}" : $"best epoch {epochs}";
        AnsiConsole.MarkupLine(Markup.Escape(string.Create(inv,
            $"{s.Head} probe on {r.Probe.Head.Dimension} features from {r.Harmful} harmful and {r.Harmless} harmless prompts ({r.Duplicates} duplicates and {r.Conflicts} texts on both sides dropped), {fit} -> {s.Out}")));
        if (cal is not null)
            AnsiConsole.MarkupLine(string.Create(inv,
                $"threshold {r.Probe.Threshold:G4}: recall {cal.Recall:F3} (target {cal.TargetRecall:F3}), false-positive rate {cal.FalsePositiveRate:F3} on {cal.Harmful} + {cal.Harmless} {(s.CalibrateHarmful.Length > 0 ? "calibration-set" : "held-out")} prompts"));
        return ExitCodes.Ok;
    }
}
