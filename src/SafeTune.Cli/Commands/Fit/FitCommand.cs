using System.Globalization;
using SafeTune.Autodiff.Lora;
using SafeTune.Cli.Infrastructure;
using SafeTune.Runtime;
using SafeTune.Runtime.Training;
using FitLoop = SafeTune.Runtime.Training.Fit;
using Spectre.Console;
using Spectre.Console.Cli;

namespace SafeTune.Cli.Commands.Fit;

/// <summary><c>safetune fit MODEL --batch BATCH.json --steps N ...</c>: overfit one batch, the "can this model train?" check.</summary>
public sealed class FitCommand : Command<FitSettings>
{
    /// <inheritdoc/>
    public override int Execute(CommandContext context, FitSettings settings, CancellationToken cancellationToken)
    {
        var memory = new MemoryAccount();
        var model = ModelSource.LoadTrainable(settings.Model);
        memory.Mark("model loaded", model.Graph.Initializers.Sum(v => v.Initializer!.ByteCount));
        var batch = TokenBatch.Load(settings.Batch);
        var optimizer = new OptimizerConfig
        {
            Kind = settings.Optimizer == "sgd" ? OptimizerKind.Sgd : OptimizerKind.AdamW,
            LearningRate = settings.LearningRate,
            WeightDecay = settings.WeightDecay,
            Momentum = settings.Momentum,
        };
        var options = new FitOptions
        {
            Steps = settings.Steps,
            Optimizer = optimizer,
            Schedule = settings.Schedule == "cosine" ? new CosineSchedule(settings.LearningRate, settings.Warmup, settings.Steps) : null,
            ClipNorm = settings.ClipNorm,
            Lora = settings.LoraRank is { } r
                ? new LoraOptions { Rank = r, Alpha = settings.LoraAlpha, Pattern = settings.LoraPattern ?? LoraOptions.DefaultPattern }
                : null,
            Selection = new ParameterSelection { TrainablePattern = settings.Trainable, FrozenPattern = settings.Frozen, KeepUntied = settings.KeepUntied },
            CheckpointDirectory = settings.CheckpointDir,
            Resume = settings.Resume,
            Runtime = new SessionConfig { Provider = SessionConfig.ParseProvider(settings.Provider) },
            Memory = memory,
            KlBeta = settings.KlBeta,
            CheckpointActivations = settings.CheckpointActivations,
            BaseDtype = TrainingOptions.ParseBaseDtype(settings.BaseDtype ?? "fp32")!.Value,
        };
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; cancel.Cancel(); };
        Console.CancelKeyPress += onCancel;
        try
        {
            var result = settings.Json ? FitLoop.Run(model, batch, options, null, cancel.Token) : RunWithProgress(model, batch, options, cancel.Token);
            if (settings.Export is { } path) result.Model.Save(path);
            if (settings.Json) WriteJson(result, memory);
            else WriteSummary(result, settings);
            return ExitCodes.Ok;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }

    private static FitResult RunWithProgress(Onnx.Model model, TokenBatch batch, FitOptions options, CancellationToken token)
    {
        FitResult? result = null;
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask("fit", maxValue: options.Steps);
                var progress = new Progress<FitProgress>(p =>
                {
                    task.Value = p.Step;
                    task.Description = string.Create(CultureInfo.InvariantCulture, $"step {p.Step}/{p.TotalSteps} loss {p.Loss:F4} lr {p.LearningRate:G3} {p.Milliseconds:F0} ms");
                });
                result = FitLoop.Run(model, batch, options, new SynchronousProgress<FitProgress>(p => ((IProgress<FitProgress>)progress).Report(p)), token);
                task.Value = options.Steps;
            });
        return result!;
    }

    private static void WriteJson(FitResult r, MemoryAccount memory) => JsonOut.Write(w =>
    {
        w.WriteStartArray("losses");
        foreach (var l in r.Losses) w.WriteNumberValue(l);
        w.WriteEndArray();
        w.WriteNumber("ms_per_step", Math.Round(r.MsPerStep, 2));
        w.WriteNumber("tokens_per_step", r.TokensPerStep);
        w.WriteNumber("peak_rss_mb", Math.Round(r.PeakRssMb, 1));
        w.WriteNumber("first_step", r.FirstStep);
        w.WriteBoolean("cancelled", r.Cancelled);
        if (r.Estimate is { } e)
        {
            w.WriteStartObject("predicted_memory");
            w.WriteNumber("total_mb", Math.Round(e.TotalBytes / 1048576.0, 1));
            w.WriteNumber("weights_mb", Math.Round(e.WeightBytes / 1048576.0, 1));
            w.WriteNumber("trainable_state_mb", Math.Round(e.TrainableStateBytes / 1048576.0, 1));
            w.WriteNumber("activations_mb", Math.Round(e.ActivationBytes / 1048576.0, 1));
            w.WriteString("largest_tensor", e.LargestTensor);
            w.WriteNumber("largest_tensor_mb", Math.Round(e.LargestTensorBytes / 1048576.0, 1));
            w.WriteStartObject("alive_at_peak_mb");
            foreach (var (name, bytes) in e.AtPeak) w.WriteNumber(name, Math.Round(bytes / 1048576.0, 1));
            w.WriteEndObject();
            w.WriteEndObject();
        }
        JsonOut.WriteMemory(w, memory);
    });

    private static void WriteSummary(FitResult r, FitSettings s)
    {
        var inv = CultureInfo.InvariantCulture;
        var table = new Table().AddColumns("step", "loss");
        for (int i = 0; i < r.Losses.Count; i++) table.AddRow((r.FirstStep + i + 1).ToString(inv), r.Losses[i].ToString("F5", inv));
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine(string.Create(inv,
            $"{r.MsPerStep:F1} ms/step (median after 3 steps), {r.TokensPerStep} tokens/step, {r.TokensPerStep / Math.Max(r.MsPerStep, 1e-9) * 1000:F0} tokens/s, peak RSS {r.PeakRssMb:F0} MB"));
        if (r.Cancelled) AnsiConsole.MarkupLine("[yellow]cancelled: resume with --resume[/]");
        if (s.Export is not null) AnsiConsole.MarkupLine($"trained model -> {Markup.Escape(s.Export)}");
    }
}
