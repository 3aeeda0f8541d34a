using System.Globalization;
using SafeTune.Autodiff.Lora;
using SafeTune.Cli.Infrastructure;
using SafeTune.Models.Chat;
using SafeTune.Models.Generation;
using SafeTune.Runtime;
using SafeTune.Runtime.Training;
using SafeTune.Safety.Critics;
using SafeTune.Training.Data;
using SafeTune.Training.FineTuning;
using Spectre.Console;
using Spectre.Console.Cli;

namespace SafeTune.Cli.Commands.Train;

/// <summary><c>safetune train</c>: risk-adaptive safe fine-tuning of a chat model on a data set.</summary>
public sealed class TrainCommand : Command<TrainSettings>
{
    /// <inheritdoc/>
    public override int Execute(CommandContext context, TrainSettings s, CancellationToken cancellationToken)
    {
        TemplateChoice? template = null;
        var options = Options(s) with
        {
            // The warning goes out before any data is read; the choice itself is named in the summary (or the JSON object).
            TemplateChosen = choice => { template = choice; TemplateNotice.Warn(choice); },
        };
        if (s.GenAiOut is { } target) GenAiFolder.CheckTarget(target);
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; cancel.Cancel(); };
        Console.CancelKeyPress += onCancel;
        try
        {
            var result = s.Json ? TrainJob.Run(options, WarmupCheck(options, null), cancel.Token) : RunWithProgress(options, cancel.Token);
            var run = new RunFolder(s.Out);
            if (s.GenAiOut is { } genai && !result.Result.Cancelled)
                GenAiFolder.Write(Onnx.Model.Load(run.GenerationModelPath), options.Tokenizer, genai, new GenAiFolderOptions { Template = template?.Template });
            if (s.Json) WriteJson(result, run, options, template!, s.GenAiOut);
            else WriteSummary(result, run, options, template!, s.GenAiOut);
            return ExitCodes.Ok;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }

    /// <summary>The job the settings describe.</summary>
    internal static TrainJobOptions Options(TrainSettings s)
    {
        var method = s.Method ?? (s.Risk.Trim().Equals("none", StringComparison.OrdinalIgnoreCase) ? "standard" : "adaptive");
        // Without --weighting the method's own weighting holds (adaptive: per example); --aggregate max asks for batch weighting.
        var safety = Methods.Preset(method, s.Risk, s.BetaMap,
            s.Weighting switch
            {
                "example" => JudgeAggregation.PerExample,
                "batch" => s.Aggregate == "max" ? JudgeAggregation.Max : JudgeAggregation.Mean,
                _ => s.Aggregate == "max" ? JudgeAggregation.Max : null,
            },
            s.Penalty switch { null => null, "l2" => Penalty.L2, "constrained" => Penalty.Constrained, _ => Penalty.Kl }, s.PenaltyStrength);
        var named = ModelSource.Named(s.Model);
        return new TrainJobOptions
        {
            Model = named?.ModelPath ?? s.Model,
            GenerationModel = s.GenerationModel ?? named?.GenerationModel,
            Tokenizer = s.Tokenizer.Length > 0 ? s.Tokenizer : named!.Tokenizer,
            Template = s.Template,
            Data = s.Data,
            Epochs = s.Epochs,
            Steps = s.Steps,
            BatchSize = s.BatchSize,
            MicroBatchSize = s.MicroBatch,
            MaxLength = s.MaxLength,
            CheckpointActivations = s.CheckpointActivations,
            BaseDtype = TrainingOptions.ParseBaseDtype(s.BaseDtype ?? "fp32")!.Value,
            Layout = s.Pack ? BatchLayout.Pack : BatchLayout.Pad,
            Seed = s.Seed,
            Lora = s.Full ? null : new LoraOptions { Rank = s.LoraRank, Alpha = s.LoraAlpha, Pattern = s.LoraPattern ?? LoraOptions.DefaultPattern },
            Selection = new ParameterSelection { TrainablePattern = s.Trainable, FrozenPattern = s.Frozen, KeepUntied = s.KeepUntied },
            Optimizer = new OptimizerConfig { LearningRate = s.LearningRate, WeightDecay = s.WeightDecay },
            WarmupSteps = s.Warmup,
            ClipNorm = s.ClipNorm > 0 ? s.ClipNorm : null,
            Safety = safety,
            RunDirectory = s.Out,
            Resume = s.Resume,
            Overwrite = s.Overwrite,
            Force = s.Force,
            CheckpointEvery = s.CheckpointEvery,
            Runtime = new SessionConfig { Provider = SessionConfig.ParseProvider(s.Provider), IntraOpThreads = s.Threads },
        };
    }

    private static TrainJobResult RunWithProgress(TrainJobOptions options, CancellationToken token)
    {
        TrainJobResult? result = null;
        var inv = CultureInfo.InvariantCulture;
        AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask("preparing", maxValue: 1);
                long tokens = 0;
                double ms = 0;
                var progress = new SynchronousProgress<StepLog>(p =>
                {
                    tokens += p.Tokens;
                    ms += p.Milliseconds;
                    task.MaxValue = p.TotalSteps;
                    task.Value = p.Step;
                    string risk = p.Risk is { } r ? r.ToString("F2", inv) : "-";
                    task.Description = string.Create(inv,
                        $"step {p.Step}/{p.TotalSteps} loss {p.Loss:F4} risk {risk} beta {p.Beta:F2} {tokens / Math.Max(ms, 1e-9) * 1000:F0} tok/s");
                });
                result = TrainJob.Run(options, WarmupCheck(options, progress), token);
            });
        return result!;
    }

    /// <summary>
    /// Passes steps on to <paramref name="inner"/>, and warns on stderr once, at the first step, when the warm-up is as long
    /// as the run: the learning rate then never reaches --lr (40 rows at batch 8 are 5 steps, all of them warm-up).
    /// </summary>
    internal static IProgress<StepLog> WarmupCheck(TrainJobOptions options, IProgress<StepLog>? inner)
    {
        bool checkedOnce = false;
        return new SynchronousProgress<StepLog>(p =>
        {
            if (!checkedOnce)
            {
                checkedOnce = true;
                if (options.WarmupSteps > 0 && options.WarmupSteps >= p.TotalSteps)
                    Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"safetune: warning: --warmup {options.WarmupSteps} is not shorter than the run ({p.TotalSteps} steps): every step is warm-up and the learning rate never reaches --lr {options.Optimizer.LearningRate}."));
            }
            inner?.Report(p);
        });
    }

    /// <summary>The mean of the first and of the last tenth of the steps (at least one step each): a trend that one noisy step does not decide.</summary>
    internal static (double First, double Last) Trend(IReadOnlyList<double> values)
    {
        int k = Math.Max(1, values.Count / 10);
        return (values.Take(k).Average(), values.Skip(values.Count - k).Average());
    }

    private static void WriteJson(TrainJobResult job, RunFolder run, TrainJobOptions options, TemplateChoice template, string? genaiOut)
    {
        var r = job.Result;
        JsonOut.Write(w =>
        {
            w.WriteNumber("steps", r.Steps);
            w.WriteNumber("examples", job.Examples);
            Number(w, "first_loss", r.Log.Count > 0 ? r.Log[0].Loss : null);
            Number(w, "last_loss", r.Log.Count > 0 ? r.Log[^1].Loss : null);
            Number(w, "mean_beta", r.Log.Count > 0 ? r.Log.Average(e => e.Beta) : null);
            Number(w, "mean_risk", r.Log.Any(e => e.Risk is not null) ? r.Log.Where(e => e.Risk is not null).Average(e => e.Risk!.Value) : null);
            w.WriteNumber("risk_failures", r.RiskFailures);
            w.WriteNumber("seconds", Math.Round(r.Seconds, 3));
            w.WriteNumber("ms_per_step", Math.Round(r.MsPerStep, 2));
            w.WriteNumber("tokens_per_s", Math.Round(r.TokensPerSecond, 1));
            w.WriteString("model", r.Cancelled ? null : run.ModelPath);
            w.WriteString("generation_model", r.Cancelled || options.GenerationModel is null ? null : run.GenerationModelPath);
            w.WriteString("genai_out", r.Cancelled || genaiOut is null ? null : Path.GetFullPath(genaiOut));
            w.WriteBoolean("cancelled", r.Cancelled);
            w.WriteString("template", template.Name);
        });
    }

    private static void Number(System.Text.Json.Utf8JsonWriter w, string name, double? value)
    {
        if (value is { } v) w.WriteNumber(name, Math.Round(v, 6));
        else w.WriteNull(name);
    }

    private static void WriteSummary(TrainJobResult job, RunFolder run, TrainJobOptions options, TemplateChoice template, string? genaiOut)
    {
        var r = job.Result;
        var inv = CultureInfo.InvariantCulture;
        var table = new Table().AddColumns("", "");
        table.AddRow("method", Markup.Escape($"{options.Safety.Penalty.ToString().ToLowerInvariant()} penalty, beta map {options.Safety.BetaMap.Text}, risk {job.RiskSource ?? "none"}"));
        table.AddRow("template", Markup.Escape(template.Describe()["chat template: ".Length..]));
        table.AddRow("examples", string.Create(inv, $"{job.Examples} ({job.Dropped} dropped, {job.Truncated} truncated)"));
        table.AddRow("steps", string.Create(inv, $"{r.Steps} ({r.FirstStep} before this run)"));
        if (r.Log.Count > 0)
        {
            // The blended loss mixes SFT and KL with a beta that changes per batch, so its first and last values say little; each part is shown on its own.
            var (sftFirst, sftLast) = Trend([.. r.Log.Select(e => e.Sft)]);
            table.AddRow("SFT loss", string.Create(inv, $"{sftFirst:F4} -> {sftLast:F4} (mean of the first and last {Math.Max(1, r.Log.Count / 10)} steps)"));
            if (r.Log.All(e => e.Kl is not null))
            {
                var (klFirst, klLast) = Trend([.. r.Log.Select(e => e.Kl!.Value)]);
                table.AddRow(options.Safety.Penalty == Penalty.Kl ? "KL to reference" : "penalty", string.Create(inv, $"{klFirst:F4} -> {klLast:F4}"));
            }
            table.AddRow("beta", string.Create(inv, $"mean {r.Log.Average(e => e.Beta):F3}, min {r.Log.Min(e => e.Beta):F3}, max {r.Log.Max(e => e.Beta):F3}"));
            if (r.Log.Any(e => e.Risk is not null))
                table.AddRow("risk", string.Create(inv, $"mean {r.Log.Where(e => e.Risk is not null).Average(e => e.Risk!.Value):F3}, judge/probe failures {r.RiskFailures} (scored as harmful)"));
        }
        table.AddRow("speed", string.Create(inv, $"{r.MsPerStep:F1} ms/step (median), {r.TokensPerSecond:F0} tokens/s, {r.Seconds:F1} s"));
        table.AddRow("run folder", Markup.Escape(run.Directory));
        if (!r.Cancelled) table.AddRow("model", Markup.Escape(run.ModelPath));
        if (!r.Cancelled && genaiOut is not null) table.AddRow("GenAI folder", Markup.Escape(Path.GetFullPath(genaiOut)));
        AnsiConsole.Write(table);
        if (r.Cancelled) AnsiConsole.MarkupLine("[yellow]cancelled: continue with --resume[/]");
    }
}
