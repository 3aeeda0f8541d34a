using System.Globalization;
using SafeTune.Cli.Infrastructure;
using SafeTune.Onnx;
using SafeTune.Safety.Critics;
using Spectre.Console;
using Spectre.Console.Cli;
using SafeTune.Runtime;

namespace SafeTune.Cli.Commands.Critic;

/// <summary>
/// <c>safetune critic score --judge SPEC --data FILE</c>: score (prompt, response) pairs with a Safety Critic on the
/// 1-5 rubric. Items the judge cannot score are failed closed (score 5) and counted by reason; that is a result, not a
/// user error.
/// </summary>
public sealed class CriticScoreCommand : Command<CriticScoreSettings>
{
    /// <inheritdoc/>
    public override int Execute(CommandContext context, CriticScoreSettings s, CancellationToken cancellationToken)
    {
        var options = new JudgeRunOptions
        {
            Judge = s.Judge,
            Data = s.Data,
            PromptColumn = s.PromptColumn,
            ResponseColumn = s.ResponseColumn,
            Aggregation = SafetyJudges.ParseAggregation(s.Aggregate),
        };
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; cancel.Cancel(); };
        Console.CancelKeyPress += onCancel;
        JudgeRunResult result;
        try
        {
            result = s.Json
                ? JudgeRun.ScoreFileAsync(options, null, cancel.Token).GetAwaiter().GetResult()
                : RunWithProgress(options, cancel.Token);
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            throw new UserInputException("cancelled before every item was scored; nothing was written.");
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
        if (s.Out is { } path) result.WriteScores(path);
        if (s.Json) WriteJson(result);
        else WriteTables(result, s.Out);
        return ExitCodes.Ok;
    }

    private static JudgeRunResult RunWithProgress(JudgeRunOptions options, CancellationToken token)
    {
        JudgeRunResult? result = null;
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask("reading", maxValue: 1);
                var progress = new SynchronousProgress<JudgeRunProgress>(p =>
                {
                    task.MaxValue = Math.Max(1, p.Total);
                    task.Value = p.Done;
                    task.Description = $"judged {p.Done}/{p.Total}";
                });
                result = JudgeRun.ScoreFileAsync(options, progress, token).GetAwaiter().GetResult();
                task.Value = task.MaxValue;
            });
        return result!;
    }

    private static void WriteJson(JudgeRunResult r) => JsonOut.Write(w =>
    {
        var s = r.Summary;
        w.WriteString("judge", r.JudgeName);
        w.WriteNumber("n", s.Count);
        w.WriteNumber("mean", Math.Round(s.Mean, 6));
        w.WriteNumber("max", s.Max);
        w.WriteString("aggregation", Name(r.Aggregation));
        w.WriteNumber("aggregate", Math.Round(r.Aggregate, 6));
        w.WriteStartArray("scores");
        foreach (var v in r.Verdicts) w.WriteNumberValue(v.Score);
        w.WriteEndArray();
        w.WriteStartArray("histogram");
        foreach (var c in s.Histogram) w.WriteNumberValue(c);
        w.WriteEndArray();
        w.WriteNumber("failed", s.Failed);
        w.WriteStartObject("failures");
        foreach (var (reason, count) in s.Failures) w.WriteNumber(reason, count);
        w.WriteEndObject();
        if (r.Stats is { } st)
        {
            w.WriteNumber("from_cache", st.FromCache);
            w.WriteNumber("requests", st.Requests);
            w.WriteNumber("retries", st.Retries);
        }
        w.WriteNumber("seconds", Math.Round(r.Seconds, 3));
    });

    private static void WriteTables(JudgeRunResult r, string? outPath)
    {
        var inv = CultureInfo.InvariantCulture;
        var s = r.Summary;
        var t = new Table().AddColumns("", "value");
        t.AddRow("judge", Markup.Escape(r.JudgeName));
        t.AddRow("items", s.Count.ToString(inv));
        t.AddRow("mean score", s.Mean.ToString("F3", inv));
        t.AddRow("max score", s.Max.ToString("G4", inv));
        if (r.Aggregation != JudgeAggregation.Mean) t.AddRow($"aggregate ({Name(r.Aggregation)})", r.Aggregate.ToString("F3", inv));
        t.AddRow("failed (scored 5)", s.Failed == 0 ? "0" : $"[red]{s.Failed.ToString(inv)}[/]");
        if (r.Stats is { } st)
            t.AddRow("requests", string.Create(inv, $"{st.Requests} ({st.Retries} retries), {st.FromCache} items from the cache"));
        t.AddRow("seconds", r.Seconds.ToString("F2", inv));
        AnsiConsole.Write(t);

        var histogram = new BarChart().Label("scores").Width(60);
        for (int score = 1; score <= 5; score++)
            histogram.AddItem(score.ToString(inv), s.Histogram[score - 1], score switch { 1 => Color.Green, 2 => Color.Chartreuse1, 3 => Color.Yellow, 4 => Color.Orange1, _ => Color.Red });
        AnsiConsole.Write(histogram);

        if (s.Failures.Count > 0)
        {
            var f = new Table().AddColumns("failure", "items", "example");
            foreach (var (reason, count) in s.Failures)
            {
                var example = r.Verdicts.First(v => JudgeFailureReasons.Of(v) == reason).Error ?? "";
                f.AddRow(Markup.Escape(reason), count.ToString(inv), Markup.Escape(example));
            }
            AnsiConsole.Write(f);
        }
        if (outPath is not null) AnsiConsole.MarkupLine($"per-item scores -> {Markup.Escape(outPath)}");
    }

    private static string Name(JudgeAggregation a) => a switch
    {
        JudgeAggregation.Max => "max",
        JudgeAggregation.PerExample => "per-example",
        _ => "mean",
    };
}
