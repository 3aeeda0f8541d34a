using System.ComponentModel;
using System.Globalization;
using SafeTune.Cli.Infrastructure;
using SafeTune.Training.Experiments;
using Spectre.Console;
using Spectre.Console.Cli;
using SafeTune.Runtime;

namespace SafeTune.Cli.Commands.Experiment;

/// <summary>Arguments of <c>safetune experiment</c>.</summary>
public sealed class ExperimentSettings : CommandSettings
{
    [CommandOption("--config <FILE>")]
    [Description("The experiment: model, training settings, scenarios, methods, seeds and evaluation sets (JSON; see the README).")]
    public string Config { get; init; } = "";

    /// <summary>Output folder override.</summary>
    [CommandOption("--out <DIR>")]
    [Description("Where report.md, results.json, the plots and the runs go (default: the config's \"out\", else a folder named after the config).")]
    public string? Out { get; init; }

    /// <summary>JSON output.</summary>
    [CommandOption("--json")]
    [Description("Print results.json's summaries as one JSON object.")]
    public bool Json { get; init; }

    /// <inheritdoc/>
    public override ValidationResult Validate() => Config.Length == 0 ? ValidationResult.Error("--config is required.") : ValidationResult.Success();
}

/// <summary><c>safetune experiment --config FILE</c>: methods x attack scenarios x seeds, with a report.</summary>
public sealed class ExperimentCommand : Command<ExperimentSettings>
{
    /// <inheritdoc/>
    public override int Execute(CommandContext context, ExperimentSettings s, CancellationToken cancellationToken)
    {
        var config = ExperimentConfig.Load(s.Config);
        if (s.Out is { } o) config = config with { Out = Path.GetFullPath(o) };
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; cancel.Cancel(); };
        Console.CancelKeyPress += onCancel;
        try
        {
            var results = s.Json ? ExperimentRunner.Run(config, null, cancel.Token) : ExperimentDisplay.RunWithProgress(r => ExperimentRunner.Run(config, r, cancel.Token));
            if (s.Json) ExperimentDisplay.WriteJson(results, extra: null);
            else ExperimentDisplay.WriteTables(results);
            return ExitCodes.Ok;
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("safetune: cancelled; run the same command again to continue (finished runs are kept, the current one resumes from its checkpoint).");
            return ExitCodes.UserError;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }
}

/// <summary>Progress bar, tables and JSON for experiments (shared with <c>safetune demo</c>).</summary>
internal static class ExperimentDisplay
{
    public static ExperimentResults RunWithProgress(Func<IProgress<ExperimentProgress>, ExperimentResults> run)
    {
        ExperimentResults? results = null;
        var inv = CultureInfo.InvariantCulture;
        if (!ConsoleOutput.Live)
        {
            // A log: a line when a run starts, and a step line now and then.
            var runs = new StatusLog(Console.Out, TimeSpan.FromSeconds(30));
            var steps = new StatusLog(Console.Out, TimeSpan.FromSeconds(30));
            return run(new SynchronousProgress<ExperimentProgress>(p =>
            {
                runs.Update(Markup.Escape(string.Create(inv, $"runs {p.Done}/{p.Total}: {p.Current}")));
                if (p.Step is { } e)
                {
                    string risk = e.Risk is { } r ? r.ToString("F2", inv) : "-";
                    steps.Update(Markup.Escape(string.Create(inv, $"  {p.Current}: step {e.Step}/{e.TotalSteps} loss {e.Loss:F3} risk {risk} beta {e.Beta:F2}")));
                }
            }));
        }
        AnsiConsole.Progress()
            .AutoClear(true)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var grid = ctx.AddTask("experiment", maxValue: 1);
                var step = ctx.AddTask("run", maxValue: 1);
                results = run(new SynchronousProgress<ExperimentProgress>(p =>
                {
                    grid.MaxValue = Math.Max(1, p.Total);
                    grid.Value = p.Done;
                    grid.Description = Markup.Escape(string.Create(inv, $"runs {p.Done}/{p.Total}: {p.Current}"));
                    if (p.Step is { } e)
                    {
                        step.MaxValue = e.TotalSteps;
                        step.Value = e.Step;
                        string risk = e.Risk is { } r ? r.ToString("F2", inv) : "-";
                        step.Description = string.Create(inv, $"step {e.Step}/{e.TotalSteps} loss {e.Loss:F3} risk {risk} beta {e.Beta:F2}");
                    }
                    else step.Description = Markup.Escape(p.Current);
                }));
                grid.Value = grid.MaxValue;
                step.Value = step.MaxValue;
            });
        return results!;
    }

    public static void WriteTables(ExperimentResults results)
    {
        var summaries = ExperimentReport.Summaries(results);
        var before = results.Before;
        foreach (var scenario in results.Config.Scenarios)
        {
            var rows = summaries.Where(x => x.Scenario == scenario.Name).ToList();
            if (rows.Count == 0) continue;
            var standard = rows.FirstOrDefault(r => r.Method == "standard");
            bool hasTask = before.TaskExactMatch is not null;
            var table = new Table().Title(Markup.Escape($"{results.Config.Name}: {scenario.Name}"))
                .AddColumns(["method", "ASR before", "ASR after", "utility", "over-refusal", .. hasTask ? new[] { "task gain" } : [], "mean beta", "s / run", "vs standard"]);
            foreach (var r in rows)
                table.AddRow([Markup.Escape(r.Method), Pct(before.Asr), r.Asr?.Percent() ?? "-", r.ExactMatch?.Percent() ?? "-", r.OverRefusal?.Percent() ?? "-",
                    .. hasTask ? new[] { r.Gain(before)?.Percent() ?? "-" } : [],
                    r.MeanBeta.Number(), r.TrainSeconds.Mean.ToString("F1", CultureInfo.InvariantCulture),
                    standard is null ? "" : (r.TrainSeconds.Mean / Math.Max(standard.TrainSeconds.Mean, 1e-9)).ToString("F2", CultureInfo.InvariantCulture) + "x"]);
            AnsiConsole.Write(table);
        }
        AnsiConsole.MarkupLine(Markup.Escape(string.Create(CultureInfo.InvariantCulture,
            $"Percentages: mean ± std over {results.Config.Seeds.Count} seed(s). Report: {Path.Combine(results.Config.Out!, "report.md")} ({results.Seconds:F0} s)")));
    }

    public static void WriteJson(ExperimentResults results, Action<System.Text.Json.Utf8JsonWriter>? extra)
    {
        var summaries = ExperimentReport.Summaries(results);
        JsonOut.Write(w =>
        {
            w.WriteString("name", results.Config.Name);
            Num(w, "asr_before", results.Before.Asr);
            Num(w, "utility_before", results.Before.ExactMatch);
            Num(w, "overrefusal_before", results.Before.OverRefusal);
            w.WriteStartObject("scenarios");
            foreach (var group in summaries.GroupBy(x => x.Scenario))
            {
                w.WriteStartObject(group.Key);
                foreach (var r in group) WriteMethod(w, r.Method, r, results.Before);
                w.WriteEndObject();
            }
            w.WriteEndObject();
            extra?.Invoke(w);
            w.WriteNumber("seconds", Math.Round(results.Seconds, 1));
        });
    }

    /// <summary>One method's figures (<see cref="MethodSummary.ToJson"/>) as a JSON object named <paramref name="name"/>.</summary>
    public static void WriteMethod(System.Text.Json.Utf8JsonWriter w, string name, MethodSummary r, EvalFigures before)
    {
        w.WritePropertyName(name);
        r.ToJson(before).WriteTo(w);
    }

    public static void Num(System.Text.Json.Utf8JsonWriter w, string name, double? value)
    {
        if (value is { } v) w.WriteNumber(name, Math.Round(v, 6));
        else w.WriteNull(name);
    }

    private static string Pct(double? x) => x is { } v ? (v * 100).ToString("F1", CultureInfo.InvariantCulture) : "-";
}
