using System.ComponentModel;
using System.Globalization;
using SafeTune.Cli.Commands.Experiment;
using SafeTune.Cli.Infrastructure;
using SafeTune.Models.Demo;
using SafeTune.Training.Demo;
using SafeTune.Training.Experiments;
using Spectre.Console;
using Spectre.Console.Cli;
using SafeTune.Runtime;

namespace SafeTune.Cli.Commands.Demo;

/// <summary>Arguments of <c>safetune demo</c>.</summary>
public sealed class DemoSettings : CommandSettings
{
    [CommandOption("--seeds <N>")]
    [Description("Run every method with N seeds and report mean ± std (default 3).")]
    public int Seeds { get; init; } = 3;

    [CommandOption("--epochs <N>")]
    [Description("Epochs of the attack over its 300 harmful pairs (default 2); the mixed and benign scenarios train the same number of steps.")]
    public int Epochs { get; init; } = DemoRun.DefaultEpochs;

    /// <summary>Output folder.</summary>
    [CommandOption("--out <DIR>")]
    [Description("Where report.md, results.json, the plots and the runs go (default: safetune-demo).")]
    public string Out { get; init; } = "safetune-demo";

    /// <summary>Cache folder.</summary>
    [CommandOption("--cache <DIR>")]
    [Description("Where the demo model, its data, the probe and the judge are built once and kept (default: $SAFETUNE_CACHE, else ~/.cache/safetune).")]
    public string? Cache { get; init; }

    [CommandOption("--threads <N>")]
    [Description("ONNX Runtime threads per run (default: the cores shared among the runs trained at once).")]
    public int Threads { get; init; }

    [CommandOption("--parallel <N>")]
    [Description("Runs trained at once (default: 2 on a machine with 2 or more cores, else 1).")]
    public int Parallel { get; init; }

    /// <summary>JSON output.</summary>
    [CommandOption("--json")]
    [Description("Print {\"asr_before\", \"utility_before\", \"overrefusal_before\", \"task_before\", \"seconds\", \"methods\": the attack scenario's, "
        + "\"scenarios\": {\"attack\" | \"mixed\" | \"benign\": {\"methods\": {\"standard\" | \"fixed_kl\" | \"adaptive_probe\" | \"adaptive_critic\" | "
        + "\"paper_probe\" | \"paper_critic\": {\"asr\", \"utility\", \"overrefusal\", \"gain\", \"mean_beta\", ...}}}}}; adaptive_* is SafeTune's default "
        + "adaptive setting, paper_* the paper's exact one; rates and the gain are fractions.")]
    public bool Json { get; init; }

    /// <inheritdoc/>
    public override ValidationResult Validate() =>
        Seeds < 1 ? ValidationResult.Error($"--seeds must be at least 1, not {Seeds}.")
        : Epochs < 1 ? ValidationResult.Error($"--epochs must be at least 1, not {Epochs}.")
        : Threads < 0 ? ValidationResult.Error($"--threads must be 0 (automatic) or more, not {Threads}.")
        : Parallel < 0 ? ValidationResult.Error($"--parallel must be 0 (automatic) or more, not {Parallel}.")
        : ValidationResult.Success();
}

/// <summary><c>safetune demo</c>: the embedded default, end to end.</summary>
public sealed class DemoCommand : Command<DemoSettings>
{
    /// <inheritdoc/>
    public override int Execute(CommandContext context, DemoSettings s, CancellationToken cancellationToken)
    {
        var started = DateTime.UtcNow;
        var options = new DemoOptions
        {
            CacheDirectory = SafeTuneCache.Demo(s.Cache),
            OutDirectory = s.Out,
            Seeds = s.Seeds,
            Epochs = s.Epochs,
            Threads = s.Threads,
            Parallel = s.Parallel,
        };
        string judgeCache = SafeTuneCache.Judge(s.Cache);
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; cancel.Cancel(); };
        Console.CancelKeyPress += onCancel;
        try
        {
            // The public data sets the Safety Critic is built from, first: without them (no network and no
            // SAFETUNE_DATA_MIRROR) the demo stops here, before any model is built.
            var publicData = Safety.Critics.Local.JudgeData.FindDataDirectory(cancel.Token);
            ExperimentResults results;
            var stages = new List<(string Stage, double Seconds)>();
            if (s.Json)
            {
                var clock = System.Diagnostics.Stopwatch.StartNew();
                var assets = DemoAssets.Prepare(options.CacheDirectory, publicDataDirectory: publicData);
                stages.Add(("assets", clock.Elapsed.TotalSeconds));
                clock.Restart();
                var critic = DemoCritic.Prepare(judgeCache, cancellation: cancel.Token);
                stages.Add(("critic", clock.Elapsed.TotalSeconds));
                clock.Restart();
                results = ExperimentRunner.Run(DemoRun.Config(assets, options with { Critic = critic }), null, cancel.Token);
                stages.Add(("runs", clock.Elapsed.TotalSeconds));
            }
            else
            {
                AnsiConsole.MarkupLine("[bold]SafeTune demo[/]: harmful, mixed and benign fine-tuning of the demo model, six ways each.");
                (DemoAssetFiles assets, string critic) = ConsoleOutput.Status("preparing the demo model, data, probe and judge", status =>
                {
                    // "(once)" is said only while something is being built; a cached build is just loaded.
                    var a = DemoAssets.Prepare(options.CacheDirectory,
                        new SynchronousProgress<DemoAssetProgress>(p => status(Markup.Escape($"{p.Stage}: {p.Detail}"))),
                        new SynchronousProgress<DemoProgress>(p =>
                        {
                            if (p.Stage != "loaded")
                                status(Markup.Escape(string.Create(CultureInfo.InvariantCulture,
                                    $"building the demo model (once, then cached): {p.Stage} {(p.Stage == "train" ? $"{p.Step}/{p.TotalSteps}" : "")}")));
                        }), publicData);
                    status("the Safety Critic: loading the harm classifier");
                    var c = DemoCritic.Prepare(judgeCache, new SynchronousProgress<Safety.Critics.Local.LocalJudgeProgress>(p =>
                    {
                        if (p.Stage != "loaded")
                            status(Markup.Escape($"the Safety Critic: fine-tuning all-MiniLM-L6-v2 into a harm classifier (once, then cached): {p.Stage} {(p.Total > 0 ? $"{p.Step}/{p.Total}" : "")}"));
                    }), cancel.Token);
                    return (a, c);
                });
                results = ExperimentDisplay.RunWithProgress(r => ExperimentRunner.Run(DemoRun.Config(assets, options with { Critic = critic }), r, cancel.Token));
            }
            double seconds = (DateTime.UtcNow - started).TotalSeconds;
            if (s.Json) WriteJson(results, seconds, stages);
            else
            {
                ExperimentDisplay.WriteTables(results);
                AnsiConsole.MarkupLine(Markup.Escape(string.Create(CultureInfo.InvariantCulture, $"demo finished in {seconds:F0} s")));
            }
            return ExitCodes.Ok;
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("safetune: cancelled; run the demo again to continue (finished runs are kept).");
            return ExitCodes.UserError;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }

    private static void WriteJson(ExperimentResults results, double seconds, IReadOnlyList<(string Stage, double Seconds)> stages) =>
        JsonOut.Write(w =>
        {
            foreach (var (key, value) in DemoRun.Json(results, seconds, stages))
            {
                w.WritePropertyName(key);
                if (value is null) w.WriteNullValue();
                else value.WriteTo(w);
            }
        });
}
