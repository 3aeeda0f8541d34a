using System.Diagnostics;
using System.Text.Json.Nodes;
using SafeTune.Onnx;
using SafeTune.Runtime.Training;
using SafeTune.Training.Risk;

namespace SafeTune.Training.FineTuning;

/// <summary>
/// Risk-adaptive safe fine-tuning on <see cref="TrainingLoop"/>. Each step reads top to bottom:
/// schedule -> reference pass and a fused probe's risk -> risk -> beta -> forward/backward of
/// <c>(1 - beta) * SFT + beta * KL(pi_ref || pi_theta)</c> (see <see cref="FineTuneEngine.ForwardBackward"/>) -> clipping
/// -> optimizer -> one log line -> evaluate/checkpoint. The output is the input graph with the trained weights merged in:
/// zero inference-time cost.
/// </summary>
public static class FineTuner
{
    /// <summary>Runs the fine-tune. Cancellation stops after the current step, with a checkpoint when there is a run folder.</summary>
    public static FineTuneResult Run(FineTuneOptions options, IProgress<StepLog>? progress = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        using var engine = FineTuneEngine.Create(options);
        using var run = options.RunDirectory is { } dir ? new RunFolder(dir) : null;
        if (run is not null && !options.Resume)
        {
            if (run.HoldsRun && !options.Overwrite)
                throw new OptionException("resume", $"{run.Directory} already holds a run; continue it with {{resume}}, or replace it with {{overwrite}}.");
            if (options.Overwrite) run.Clear();
        }
        IReadOnlyList<string> forced = [];
        if (run is not null && options.Resume && options.Record is { } asked && Checkpoint.Exists(run.Checkpoints)) forced = run.RequireSameOptions(asked, options.Force);

        // resume
        long first = 0;
        if (run is not null && options.Resume && Checkpoint.Exists(run.Checkpoints)) first = engine.Restore(run.Checkpoints);
        if (run is not null)
        {
            if (options.Record is { } record) run.WriteOptions(record);
            run.OpenLogs(first > 0 ? first : null);
        }

        var schedule = new CosineSchedule(options.Optimizer.LearningRate, options.WarmupSteps, options.Plan.Steps, options.MinLearningRate);
        var log = new List<StepLog>();
        var evaluations = new List<(long, JsonObject)>();
        var loop = TrainingLoop.Run(engine.Session, new TrainingLoopOptions
        {
            Steps = options.Plan.Steps,
            Schedule = schedule,
            ClipNorm = options.ClipNorm,
            CheckpointDirectory = run?.Checkpoints,
        },
        // reference pass, risk, beta, forward/backward
        step => engine.ForwardBackward(step, options.Plan.Step(step)),
        done =>
        {
            // one log line
            var entry = engine.Logged(done);
            log.Add(entry);
            var audit = AuditLine(entry);
            // The first step of a forced resume names what differs from the recorded settings.
            if (done.Step == first && forced.Count > 0) audit["forced"] = new JsonArray([.. forced.Select(f => (JsonNode)f)]);
            run?.Audit(audit);
            run?.Metric(MetricLine(entry));
            progress?.Report(entry);

            // evaluate and checkpoint
            bool last = entry.Step == options.Plan.Steps;
            if (options.Evaluate is not null && options.EvaluateEvery > 0 && (entry.Step % options.EvaluateEvery == 0 || last))
            {
                var (merged, generation) = engine.Export();
                var figures = options.Evaluate(entry.Step, merged, generation);
                evaluations.Add((entry.Step, figures));
                run?.Metric(new JsonObject { ["step"] = entry.Step, ["eval"] = figures.DeepClone() });
            }
            if (run is not null && (entry.Step % options.CheckpointEvery == 0 || last)) engine.Save(run.Checkpoints);
        }, cancellation);
        bool cancelled = loop.Cancelled;
        if (cancelled && run is not null && engine.Session.Step > 0) engine.Save(run.Checkpoints);

        var (output, generationOutput) = engine.Export();
        if (run is not null && !cancelled)
        {
            output.Save(run.ModelPath);
            generationOutput?.Save(run.GenerationModelPath);
        }
        var times = log.Select(e => e.Milliseconds).ToList();
        double seconds = times.Sum() / 1000;
        long tokens = log.Sum(e => e.Tokens);
        return new FineTuneResult(output, generationOutput, engine.Session.Step, first, seconds, StepTimes.SteadyMedian(times),
            seconds > 0 ? tokens / seconds : 0, log, evaluations, cancelled, (engine.Risk as CriticRisk)?.Failures ?? 0);
    }

    private static JsonObject AuditLine(StepLog e)
    {
        var line = MetricLine(e);
        if (e.ExampleRisks is { } r) line["example_risk"] = Numbers(r);
        if (e.ExampleBetas is { } b) line["example_beta"] = Numbers(b);
        line["examples"] = new JsonArray([.. e.Examples.Select(x => (JsonNode)x)]);
        line["risk_failures"] = e.RiskFailures;
        return line;
    }

    private static JsonObject MetricLine(StepLog e) => new()
    {
        ["step"] = e.Step,
        ["lr"] = e.LearningRate,
        ["loss"] = e.Loss,
        ["sft"] = e.Sft,
        ["kl"] = e.Kl,
        ["risk"] = e.Risk,
        ["beta"] = e.Beta,
        ["grad_norm"] = e.GradientNorm,
        ["tokens"] = e.Tokens,
        ["response_tokens"] = e.ResponseTokens,
        ["ms"] = Math.Round(e.Milliseconds, 3),
    };

    private static JsonArray Numbers(IEnumerable<double> xs) => new([.. xs.Select(x => (JsonNode)Math.Round(x, 6))]);
}
