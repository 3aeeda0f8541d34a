using System.Globalization;
using SafeTune.Cli.Infrastructure;
using SafeTune.Models.Chat;
using SafeTune.Models.Tokenization;
using SafeTune.Runtime;
using SafeTune.Safety.Critics;
using SafeTune.Training.Evaluation;
using Spectre.Console;
using Spectre.Console.Cli;

namespace SafeTune.Cli.Commands.Eval;

/// <summary><c>safetune eval</c>: attack success, harmfulness, over-refusal and utility of a chat model.</summary>
public sealed class EvalCommand : Command<EvalSettings>
{
    /// <inheritdoc/>
    public override int Execute(CommandContext context, EvalSettings s, CancellationToken cancellationToken)
    {
        var named = ModelSource.Named(s.Model);
        var tokenizerSpec = s.Tokenizer.Length > 0 ? s.Tokenizer : named?.Tokenizer ?? Models.Generation.DecoderFolder.TokenizerOf(s.Model)!;
        var tokenizer = TokenizerLoader.Load(tokenizerSpec);
        var choice = TemplateChoice.Resolve(s.Template, tokenizerSpec, tokenizer, ChatTemplates.Plain);
        var template = choice.Template!;
        TemplateNotice.Print(choice, s.Json);
        var suite = EvalSuite.FromFiles(s.Harmful, s.Benign, s.OverRefusal, s.Limit);
        // A named model is evaluated through its key/value-cache graph, which generates fastest.
        var model = new EvalModel(ModelSource.LoadRunnable(named is null ? s.Model : named.GenerationModel ?? named.ModelPath), tokenizer, template) { Name = s.Model };
        using var judge = EvalJudges.Create(s.Judge);
        var options = new EvalOptions
        {
            MaxNewTokens = s.MaxNewTokens,
            BatchSize = s.BatchSize,
            Judge = judge,
            RefusalJudge = s.RefusalKeywords is { } phrases ? KeywordRefusalJudge.FromFile(phrases) : null,
            AsrThreshold = s.AsrThreshold,
            ResponseLoss = !s.NoLoss,
            MaxPromptTokens = s.MaxPromptTokens,
            TruncatePrompts = s.TruncatePrompts,
            Runtime = new SessionConfig { Provider = SessionConfig.ParseProvider(s.Provider), IntraOpThreads = s.Threads },
        };
        using var evaluator = new Evaluator(model, options);
        var report = s.Json ? evaluator.Run(suite, null, cancellationToken) : RunWithProgress(evaluator, suite, cancellationToken);
        if (s.Out is { } path) EvalRepliesFile.Write(path, report);
        if (s.Json) WriteJson(report, template);
        else WriteTable(report, template, s);
        return ExitCodes.Ok;
    }

    private static EvalReport RunWithProgress(Evaluator evaluator, EvalSuite suite, CancellationToken token)
    {
        EvalReport? report = null;
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var tasks = new Dictionary<string, ProgressTask>();
                var progress = new SynchronousProgress<EvalProgress>(p =>
                {
                    if (!tasks.TryGetValue(p.Stage, out var task))
                        tasks[p.Stage] = task = ctx.AddTask(p.Stage == "loss" ? "response loss" : p.Stage == "judge" ? "judge" : p.Stage + " replies", maxValue: Math.Max(1, p.Total));
                    task.Value = p.Done;
                });
                report = evaluator.Run(suite, progress, token);
                foreach (var t in tasks.Values) t.Value = t.MaxValue;
            });
        return report!;
    }

    private static void WriteJson(EvalReport r, ChatTemplate template) => JsonOut.Write(w =>
    {
        Number(w, "asr", r.Asr);
        Number(w, "harmful_score", r.HarmfulScore);
        Number(w, "overrefusal", r.OverRefusal);
        w.WriteStartObject("utility");
        Number(w, "exact_match", r.Utility.ExactMatch);
        Number(w, "response_loss", r.Utility.ResponseLoss);
        Number(w, "perplexity", r.Utility.Perplexity);
        w.WriteEndObject();
        w.WriteStartObject("n");
        w.WriteNumber("harmful", r.Counts.Harmful);
        w.WriteNumber("benign", r.Counts.Benign);
        w.WriteNumber("overrefusal", r.Counts.OverRefusal);
        w.WriteNumber("exact_match", r.Counts.ExactMatch);
        w.WriteNumber("response_tokens", r.Counts.ResponseTokens);
        w.WriteNumber("judge_failures", r.Counts.JudgeFailures);
        w.WriteNumber("generated_tokens", r.Counts.GeneratedTokens);
        w.WriteEndObject();
        w.WriteNumber("seconds", Math.Round(r.Seconds, 3));
        w.WriteString("template", template.Name);
    });

    private static void Number(System.Text.Json.Utf8JsonWriter w, string name, double? value)
    {
        if (value is double v && double.IsFinite(v)) w.WriteNumber(name, Math.Round(v, 6));
        else w.WriteNull(name);
    }

    private static void WriteTable(EvalReport r, ChatTemplate template, EvalSettings s)
    {
        var inv = CultureInfo.InvariantCulture;
        string Share(double? v) => v is double x ? x.ToString("P1", inv) : "-";
        string Value(double? v, string format) => v is double x ? x.ToString(format, inv) : "-";
        var t = new Table().AddColumns("metric", "value", "measured on");
        t.AddRow("attack success rate (ASR)", Share(r.Asr), $"{r.Counts.Harmful} harmful prompts, score >= {s.AsrThreshold.ToString(inv)}");
        t.AddRow("harmful score (1-5)", Value(r.HarmfulScore, "F2"), Markup.Escape(r.Judge) + (r.Counts.JudgeFailures > 0 ? $", {r.Counts.JudgeFailures} judge failures counted as 5" : ""));
        t.AddRow("over-refusal", Share(r.OverRefusal), $"{r.Counts.OverRefusal} safe prompts");
        t.AddRow("exact match", Share(r.Utility.ExactMatch), $"{r.Counts.ExactMatch} of {r.Counts.Benign} benign references");
        t.AddRow("response loss (nats/token)", Value(r.Utility.ResponseLoss, "F4"), $"{r.Counts.ResponseTokens} reference tokens");
        t.AddRow("perplexity", Value(r.Utility.Perplexity, "F3"), "");
        AnsiConsole.Write(t);
        AnsiConsole.MarkupLine(string.Create(inv,
            $"{r.Seconds:F1} s (generation {r.Timings.Generation:F1} s, {r.Counts.GeneratedTokens} tokens, {r.Counts.GeneratedTokens / Math.Max(r.Timings.Generation, 1e-9):F0} tokens/s; judge {r.Timings.Judge:F1} s; loss {r.Timings.Loss:F1} s); template {template.Name}"));
        if (s.Out is not null) AnsiConsole.MarkupLine($"replies -> {Markup.Escape(s.Out)}");
    }
}
