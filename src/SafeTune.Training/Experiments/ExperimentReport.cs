using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ScottPlot;
using SafeTune.Onnx;
using SafeTune.Safety.Metrics;
using SafeTune.Safety.Probes;
using SafeTune.Safety.Reports;
using SafeTune.Training.Evaluation;
using SafeTune.Training.FineTuning;

namespace SafeTune.Training.Experiments;

/// <summary>Mean and sample standard deviation of a figure over seeds.</summary>
/// <param name="Mean">The mean.</param>
/// <param name="Std">The sample standard deviation (0 for one seed).</param>
/// <param name="N">The number of values.</param>
internal readonly record struct MeanStd(double Mean, double Std, int N)
{
    /// <summary>Of the non-null values; null when there are none.</summary>
    public static MeanStd? Of(IEnumerable<double?> values)
    {
        var xs = values.Where(v => v is not null).Select(v => v!.Value).ToArray();
        if (xs.Length == 0) return null;
        double mean = xs.Average();
        double std = xs.Length < 2 ? 0 : Math.Sqrt(xs.Sum(x => (x - mean) * (x - mean)) / (xs.Length - 1));
        return new MeanStd(mean, std, xs.Length);
    }

    /// <summary>As a percentage, "12.3 ± 4.5".</summary>
    public string Percent() => N < 2 ? (Mean * 100).ToString("F1", CultureInfo.InvariantCulture)
        : string.Create(CultureInfo.InvariantCulture, $"{Mean * 100:F1} ± {Std * 100:F1}");

    /// <summary>As a number with <paramref name="digits"/> decimals, with the spread over seeds.</summary>
    public string Number(int digits = 2) => N < 2 ? Mean.ToString("F" + digits, CultureInfo.InvariantCulture)
        : Mean.ToString("F" + digits, CultureInfo.InvariantCulture) + " ± " + Std.ToString("F" + digits, CultureInfo.InvariantCulture);
}

/// <summary>One method's figures in one scenario, over the seeds.</summary>
internal sealed record MethodSummary(string Scenario, string Method, int Seeds, MeanStd? Asr, MeanStd? HarmfulScore, MeanStd? ExactMatch,
    MeanStd? ResponseLoss, MeanStd? OverRefusal, MeanStd MeanBeta, MeanStd? MeanRisk, MeanStd TrainSeconds, MeanStd MsPerStep, int RiskFailures,
    int JudgeFailures, MeanStd? TaskExactMatch = null)
{
    /// <summary>
    /// The benign gain: exact match on the task set after fine-tuning minus the starting model's (the spread is the
    /// seeds' spread of the exact match); null without a task set.
    /// </summary>
    public MeanStd? Gain(EvalFigures before) =>
        TaskExactMatch is { } t && before.TaskExactMatch is { } t0 ? t with { Mean = t.Mean - t0 } : null;

    /// <summary>
    /// The figures as <c>--json</c> prints them: means over the seeds (rates, exact matches and the gain as fractions),
    /// with the spread of ASR, utility and gain; null where there is no such set.
    /// </summary>
    public JsonObject ToJson(EvalFigures before)
    {
        ArgumentNullException.ThrowIfNull(before);
        static JsonNode? N(double? x) => x is { } v ? JsonValue.Create(Math.Round(v, 6)) : null;
        var gain = Gain(before);
        return new JsonObject
        {
            ["asr"] = N(Asr?.Mean), ["asr_std"] = N(Asr?.Std), ["utility"] = N(ExactMatch?.Mean), ["utility_std"] = N(ExactMatch?.Std),
            ["overrefusal"] = N(OverRefusal?.Mean), ["harmful_score"] = N(HarmfulScore?.Mean), ["response_loss"] = N(ResponseLoss?.Mean),
            ["task"] = N(TaskExactMatch?.Mean), ["gain"] = N(gain?.Mean), ["gain_std"] = N(gain?.Std),
            ["mean_beta"] = N(MeanBeta.Mean), ["train_seconds"] = N(TrainSeconds.Mean), ["seeds"] = Seeds, ["risk_failures"] = RiskFailures,
        };
    }
}

/// <summary>Writes an experiment's <c>results.json</c>, <c>report.md</c> and PNG plots.</summary>
internal static class ExperimentReport
{
    /// <summary>The summaries of every (scenario, method) pair, in config order.</summary>
    public static IReadOnlyList<MethodSummary> Summaries(ExperimentResults results) =>
    [
        .. from s in results.Config.Scenarios
           from m in results.Config.Methods
           let runs = results.Runs.Where(r => r.Scenario == s.Name && r.Method == m.Name).ToList()
           where runs.Count > 0
           select new MethodSummary(s.Name, m.Name, runs.Count,
               MeanStd.Of(runs.Select(r => r.After.Asr)), MeanStd.Of(runs.Select(r => r.After.HarmfulScore)),
               MeanStd.Of(runs.Select(r => r.After.ExactMatch)), MeanStd.Of(runs.Select(r => r.After.ResponseLoss)),
               MeanStd.Of(runs.Select(r => r.After.OverRefusal)), MeanStd.Of(runs.Select(r => (double?)r.MeanBeta))!.Value,
               MeanStd.Of(runs.Select(r => r.MeanRisk)), MeanStd.Of(runs.Select(r => (double?)r.TrainSeconds))!.Value,
               MeanStd.Of(runs.Select(r => (double?)r.MsPerStep))!.Value, runs.Sum(r => r.RiskFailures), runs.Sum(r => r.After.JudgeFailures),
               MeanStd.Of(runs.Select(r => r.After.TaskExactMatch))),
    ];

    /// <summary>Writes everything into the experiment's output folder; returns the report's path.</summary>
    public static string Write(ExperimentResults results)
    {
        var dir = results.Config.Out!;
        var summaries = Summaries(results);
        AtomicFile.WriteAllText(Path.Combine(dir, "results.json"), ResultsJson(results, summaries).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        var plots = new List<(string Title, string File)>();
        foreach (var scenario in results.Config.Scenarios)
        {
            var runs = results.Runs.Where(r => r.Scenario == scenario.Name).ToList();
            if (runs.Count == 0) continue;
            if (AsrBars(Path.Combine(dir, $"{scenario.Name}_asr.png"), scenario.Name, results.Before, summaries.Where(s => s.Scenario == scenario.Name).ToList()))
                plots.Add(($"{scenario.Name}: ASR and utility by method", $"{scenario.Name}_asr.png"));
            if (OverSteps(Path.Combine(dir, $"{scenario.Name}_asr_over_steps.png"), scenario.Name, runs, "metrics.jsonl", l => l["eval"]?["asr"], "ASR", percent: true,
                start: results.Before.Asr))
                plots.Add(($"{scenario.Name}: ASR over training steps", $"{scenario.Name}_asr_over_steps.png"));
            if (OverSteps(Path.Combine(dir, $"{scenario.Name}_beta_over_steps.png"), scenario.Name, runs, "audit.jsonl", l => l["beta"], "beta", percent: false))
                plots.Add(($"{scenario.Name}: beta over training steps", $"{scenario.Name}_beta_over_steps.png"));
            if (RiskHistogram(Path.Combine(dir, $"{scenario.Name}_risk_histogram.png"), scenario.Name, runs))
                plots.Add(($"{scenario.Name}: risk of the training examples", $"{scenario.Name}_risk_histogram.png"));
        }
        if (ProbeRoc(Path.Combine(dir, "probe_roc.png"), results.Config) is { } roc) plots.Add((roc, "probe_roc.png"));
        var path = Path.Combine(dir, "report.md");
        AtomicFile.WriteAllText(path, Markdown(results, summaries, plots));
        return path;
    }

    private static JsonObject ResultsJson(ExperimentResults results, IReadOnlyList<MethodSummary> summaries)
    {
        JsonNode? Ms(MeanStd? m) => m is { } v ? new JsonObject { ["mean"] = Math.Round(v.Mean, 6), ["std"] = Math.Round(v.Std, 6), ["n"] = v.N } : null;
        var options = new JsonSerializerOptions(ExperimentConfig.Json) { WriteIndented = false };
        return new JsonObject
        {
            ["name"] = results.Config.Name,
            ["before"] = JsonSerializer.SerializeToNode(results.Before, options),
            ["summaries"] = new JsonArray([.. summaries.Select(s => (JsonNode)new JsonObject
            {
                ["scenario"] = s.Scenario, ["method"] = s.Method, ["seeds"] = s.Seeds,
                ["asr"] = Ms(s.Asr), ["harmful_score"] = Ms(s.HarmfulScore), ["exact_match"] = Ms(s.ExactMatch),
                ["response_loss"] = Ms(s.ResponseLoss), ["overrefusal"] = Ms(s.OverRefusal), ["mean_beta"] = Ms(s.MeanBeta),
                ["mean_risk"] = Ms(s.MeanRisk), ["train_seconds"] = Ms(s.TrainSeconds), ["ms_per_step"] = Ms(s.MsPerStep),
                ["risk_failures"] = s.RiskFailures, ["judge_failures"] = s.JudgeFailures,
                ["task_exact_match"] = Ms(s.TaskExactMatch), ["gain"] = Ms(s.Gain(results.Before)),
            })]),
            ["runs"] = JsonSerializer.SerializeToNode(results.Runs, options),
            ["seconds"] = Math.Round(results.Seconds, 1),
        };
    }

    private static string Markdown(ExperimentResults results, IReadOnlyList<MethodSummary> summaries, List<(string Title, string File)> plots)
    {
        var inv = CultureInfo.InvariantCulture;
        var c = results.Config;
        var sb = new StringBuilder();
        sb.AppendLine(inv, $"# {c.Name}");
        sb.AppendLine();
        sb.AppendLine(string.Create(inv, $"Model `{Path.GetFileName(c.Model)}`, {c.Seeds.Count} seed(s) ({string.Join(", ", c.Seeds)}), ")
            + string.Create(inv, $"{(c.Training.LoraRank > 0 ? $"LoRA r = {c.Training.LoraRank}, alpha = {c.Training.LoraAlpha}" : "full fine-tuning")}, ")
            + string.Create(inv, $"AdamW lr {c.Training.Lr:G3} with {c.Training.Warmup} warm-up steps and cosine decay, batch {c.Training.BatchSize}, ")
            + string.Create(inv, $"{(c.Training.Steps is { } st ? $"{st} steps" : $"{c.Training.Epochs} epochs")}."));
        sb.AppendLine();
        var before = results.Before;
        sb.AppendLine($"Starting model: ASR {Pct(before.Asr)}, utility (exact match) {Pct(before.ExactMatch)}, over-refusal {Pct(before.OverRefusal)}"
            + (before.TaskExactMatch is { } t0 ? $", task exact match {Pct(t0)}" : "")
            + (before.ResponseLoss is { } l ? string.Create(inv, $", response loss {l:F3}") : "") + ".");
        sb.AppendLine();
        bool hasTask = before.TaskExactMatch is not null;
        sb.AppendLine($"Evaluation: harmful {Sets(c.Evaluation.Harmful)}; benign {Sets(c.Evaluation.Benign)}; over-refusal {Sets(c.Evaluation.OverRefusal)}"
            + (hasTask ? $"; task {Sets(c.Evaluation.Task)}" : "")
            + string.Create(inv, $"{(c.Evaluation.Limit is { } lim ? $" (the first {lim} prompts of each file)" : "")}; judge `{c.Evaluation.Judge}`, an attack succeeds at score >= {c.Evaluation.AsrThreshold}; ")
            + string.Create(inv, $"greedy replies of at most {c.Evaluation.MaxNewTokens} tokens."));
        sb.AppendLine();
        foreach (var scenario in c.Scenarios)
        {
            var rows = summaries.Where(s => s.Scenario == scenario.Name).ToList();
            if (rows.Count == 0) continue;
            var standard = rows.FirstOrDefault(r => r.Method == "standard");
            sb.AppendLine(inv, $"## {scenario.Name} ({Describe(scenario)})");
            sb.AppendLine();
            sb.AppendLine("| method | ASR before (%) | ASR after (%) | harmful score | utility, exact match (%) | response loss | over-refusal (%) | "
                + (hasTask ? "task gain (points) | " : "") + "mean beta | mean risk | s / run | ms / step | time vs standard |");
            sb.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | " + (hasTask ? "---: | " : "") + "---: | ---: | ---: | ---: | ---: |");
            foreach (var r in rows)
            {
                string overhead = standard is null ? "" : (r.TrainSeconds.Mean / Math.Max(standard.TrainSeconds.Mean, 1e-9)).ToString("F2", inv) + "x";
                sb.AppendLine($"| {r.Method} | {PctNumber(before.Asr)} | {r.Asr?.Percent() ?? "-"} | {r.HarmfulScore?.Number() ?? "-"} | {r.ExactMatch?.Percent() ?? "-"} | "
                    + $"{r.ResponseLoss?.Number(3) ?? "-"} | {r.OverRefusal?.Percent() ?? "-"} | " + (hasTask ? $"{r.Gain(before)?.Percent() ?? "-"} | " : "")
                    + $"{r.MeanBeta.Number()} | {r.MeanRisk?.Number() ?? "-"} | "
                    + string.Create(inv, $"{r.TrainSeconds.Mean:F1} | {r.MsPerStep.Mean:F0} | {overhead} |"));
            }
            sb.AppendLine();
            var failures = rows.Where(r => r.RiskFailures > 0 || r.JudgeFailures > 0).ToList();
            foreach (var r in failures)
                sb.AppendLine(inv, $"{r.Method}: {r.RiskFailures} training example(s) the risk source could not score and {r.JudgeFailures} evaluation reply(ies) the judge could not score, all counted as harmful (fail closed).");
            if (failures.Count > 0) sb.AppendLine();
        }
        sb.AppendLine("Percentages are mean ± standard deviation over the seeds. ASR: share of harmful prompts answered without a refusal "
            + "(or scored at the threshold by the judge). Utility: exact match of the benign answers. Over-refusal: share of scary-but-safe prompts refused. "
            + (hasTask ? "Task gain: exact match on the task's held-out prompts after fine-tuning minus the starting model's. " : "")
            + "s / run: training time (evaluation excluded); time vs standard: that time over standard fine-tuning's.");
        sb.AppendLine();
        if (plots.Count > 0)
        {
            sb.AppendLine("## Plots");
            sb.AppendLine();
            foreach (var (title, file) in plots)
            {
                sb.AppendLine(inv, $"![{title}]({file})");
                sb.AppendLine();
            }
        }
        return sb.ToString();

        static string Sets(IReadOnlyList<string> specs) => specs.Count == 0 ? "none" : string.Join(", ", specs.Select(s => "`" + Path.GetFileName(s) + "`"));
    }

    private static string Describe(ExperimentScenario s) => s.Kind switch
    {
        "harmful" => "harmful fine-tuning: " + string.Join(", ", s.Harmful.Select(Path.GetFileName)),
        "benign" => "benign fine-tuning: " + string.Join(", ", s.Benign.Select(Path.GetFileName)),
        _ => string.Create(CultureInfo.InvariantCulture, $"benign data with a harmful fraction of {s.HarmfulFraction * 100:0.#}%"),
    };

    private static string Pct(double? x) => x is { } v ? (v * 100).ToString("F1", CultureInfo.InvariantCulture) + "%" : "-";

    private static string PctNumber(double? x) => x is { } v ? (v * 100).ToString("F1", CultureInfo.InvariantCulture) : "-";

    private static bool AsrBars(string path, string scenario, EvalFigures before, IReadOnlyList<MethodSummary> rows)
    {
        if (AsrBarsPlot(scenario, before, rows) is not { } plot) return false;
        Plots.SavePng(plot, path);
        return true;
    }

    /// <summary>
    /// The ASR and utility bars of one scenario (the model before training, then each method), or null when no method has
    /// an ASR. <see cref="AsrBarX"/> gives each bar's position.
    /// </summary>
    internal static Plot? AsrBarsPlot(string scenario, EvalFigures before, IReadOnlyList<MethodSummary> rows)
    {
        if (rows.All(r => r.Asr is null)) return null;
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        var labels = new List<string> { "before" };
        var ticks = new List<double> { 0 };
        AddBar(plot, 0, before.Asr ?? 0, 0, palette.GetColor(0), "ASR");
        if (before.ExactMatch is { } u0) AddBar(plot, 0.4, u0, 0, palette.GetColor(1), "utility (exact match)");
        for (int i = 0; i < rows.Count; i++)
        {
            double x = AsrBarX(i + 1);
            AddBar(plot, x, rows[i].Asr?.Mean ?? 0, rows[i].Asr?.Std ?? 0, palette.GetColor(0), null);
            if (rows[i].ExactMatch is { } u) AddBar(plot, x + 0.4, u.Mean, u.Std, palette.GetColor(1), null);
            labels.Add(rows[i].Method);
            ticks.Add(x + 0.2);
        }
        ticks[0] = 0.2;
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual([.. ticks], [.. labels]);
        if (rows.Count > 4)
        {
            // Six method names side by side overlap: slant them.
            plot.Axes.Bottom.TickLabelStyle.Rotation = -30;
            plot.Axes.Bottom.TickLabelStyle.Alignment = Alignment.UpperRight;
            plot.Axes.Bottom.MinimumSize = 90;
        }
        plot.Axes.SetLimitsY(0, 1.05);
        plot.YLabel("share of prompts");
        plot.Title($"{scenario}: attack success (ASR) and utility");
        // Beside the data area, not inside it: bars reach the top whenever an attack succeeds.
        plot.ShowLegend(Edge.Right);
        return plot;
    }

    /// <summary>The position of group <paramref name="group"/>'s ASR bar (0: the model before training); its utility bar stands 0.4 to the right.</summary>
    internal static double AsrBarX(int group) => group * 1.2;

    private static void AddBar(Plot plot, double x, double value, double error, Color color, string? legend)
    {
        var bar = new Bar { Position = x, Value = value, Error = error, FillColor = color, Size = 0.38 };
        var bars = plot.Add.Bars(new[] { bar });
        if (legend is not null) bars.LegendText = legend;
    }

    private static bool OverSteps(string path, string scenario, IReadOnlyList<ExperimentRun> runs, string log, Func<JsonObject, JsonNode?> value, string what, bool percent,
        double? start = null)
    {
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        int series = 0;
        foreach (var method in runs.GroupBy(r => r.Method))
        {
            // The mean over seeds at every step all seeds logged.
            var bySeed = method.Select(r => RunFolder.ReadLog(Path.Combine(r.Directory, log))
                .Where(l => value(l) is not null).ToDictionary(l => (long)l["step"]!, l => (double)value(l)!)).Where(d => d.Count > 0).ToList();
            if (bySeed.Count == 0) continue;
            var steps = bySeed.Select(d => d.Keys.ToHashSet()).Aggregate((a, b) => { a.IntersectWith(b); return a; }).Order().ToArray();
            if (steps.Length == 0) continue;
            var ys = steps.Select(s => bySeed.Average(d => d[s]) * (percent ? 100 : 1)).ToArray();
            if (start is { } y0)
            {
                // The starting model's value at step 0.
                steps = [0, .. steps];
                ys = [y0 * (percent ? 100 : 1), .. ys];
            }
            var line = plot.Add.Scatter(steps.Select(s => (double)s).ToArray(), ys);
            line.Color = palette.GetColor(series++);
            line.LineWidth = 2;
            line.MarkerSize = steps.Length > 40 ? 0 : 5;
            line.LegendText = method.Key;
        }
        if (series == 0) return false;
        plot.XLabel("optimizer step");
        plot.YLabel(percent ? what + " (%)" : what);
        plot.Title($"{scenario}: {what} over training");
        plot.ShowLegend(Alignment.UpperLeft);
        Plots.SavePng(plot, path);
        return true;
    }

    private static bool RiskHistogram(string path, string scenario, IReadOnlyList<ExperimentRun> runs)
    {
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        const int bins = 20;
        int series = 0;
        foreach (var method in runs.GroupBy(r => r.Method))
        {
            // Each example once: its risk the first time it was seen (seed of the first run).
            var seen = new Dictionary<string, double>(StringComparer.Ordinal);
            foreach (var line in RunFolder.ReadLog(Path.Combine(method.First().Directory, "audit.jsonl")))
            {
                if (line["example_risk"] is not JsonArray risks || line["examples"] is not JsonArray ids) continue;
                for (int i = 0; i < Math.Min(risks.Count, ids.Count); i++) seen.TryAdd((string)ids[i]!, (double)risks[i]!);
            }
            if (seen.Count == 0) continue;
            var counts = new double[bins];
            foreach (var r in seen.Values) counts[Math.Min(bins - 1, (int)(r * bins))]++;
            var color = palette.GetColor(series++);
            var bars = plot.Add.Bars([.. Enumerable.Range(0, bins).Select(b => (b + 0.5) / bins)], counts);
            foreach (var b in bars.Bars) { b.FillColor = color.WithAlpha(0.6); b.Size = 1.0 / bins; }
            bars.LegendText = string.Create(CultureInfo.InvariantCulture, $"{method.Key} ({seen.Count} examples)");
        }
        if (series == 0) return false;
        plot.Axes.AutoScale();
        plot.Axes.SetLimitsY(0, plot.Axes.GetLimits().Top);
        plot.XLabel("risk of a training example (probe probability, or (judge score - 1) / 4)");
        plot.YLabel("examples");
        plot.Title($"{scenario}: risk of the training examples");
        plot.ShowLegend(Edge.Right);
        Plots.SavePng(plot, path);
        return true;
    }

    /// <summary>The ROC of the first probe a method uses, on the evaluation's harmful prompts vs its benign and over-refusal prompts.</summary>
    private static string? ProbeRoc(string path, ExperimentConfig c)
    {
        var probePath = c.Methods.Select(m => m.Risk).FirstOrDefault(r => r?.StartsWith("probe:", StringComparison.OrdinalIgnoreCase) == true)?["probe:".Length..];
        if (probePath is null || c.Evaluation.Harmful.Count == 0) return null;
        var harmless = c.Evaluation.OverRefusal.Concat(c.Evaluation.ProbeHarmless).ToList();
        var probe = ProbeFile.Load(probePath);
        var harmfulPrompts = EvalSuite.FromFiles(c.Evaluation.Harmful, null, null, c.Evaluation.Limit).Harmful.Select(p => p.Text).ToList();
        var harmlessPrompts = EvalSuite.FromFiles(null, c.Evaluation.Benign, harmless, c.Evaluation.Limit);
        var negatives = harmlessPrompts.OverRefusal.Select(p => p.Text).Concat(harmlessPrompts.Benign.Select(b => b.Prompt)).ToList();
        if (negatives.Count == 0) return null;
        var scores = ProbeTraining.Score(probe, [.. harmfulPrompts, .. negatives]);
        bool[] labels = [.. harmfulPrompts.Select(_ => true), .. negatives.Select(_ => false)];
        double auroc = BinaryMetrics.Auroc(scores, labels);
        RocPlot.Save(path, [new RocSeries("probe", BinaryMetrics.RocCurve(scores, labels), auroc)],
            new OperatingPoint(probe.Threshold, BinaryMetrics.FalsePositiveRate(scores, labels, probe.Threshold), BinaryMetrics.Recall(scores, labels, probe.Threshold)),
            $"probe on the evaluation prompts ({harmfulPrompts.Count} harmful, {negatives.Count} harmless)");
        return string.Create(CultureInfo.InvariantCulture, $"the probe's ROC on the evaluation prompts (AUROC {auroc:F3})");
    }
}
