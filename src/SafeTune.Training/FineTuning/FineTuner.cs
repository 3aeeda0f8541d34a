using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using OrtValue = Microsoft.ML.OnnxRuntime.OrtValue;
using SafeTune.Autodiff.Losses;
using SafeTune.Autodiff.Lora;
using SafeTune.Onnx;
using SafeTune.Onnx.Passes;
using SafeTune.Runtime;
using SafeTune.Runtime.Training;
using SafeTune.Safety.Critics;
using SafeTune.Training.Risk;

namespace SafeTune.Training.FineTuning;

/// <summary>
/// Risk-adaptive safe fine-tuning. Each optimizer step reads top to bottom:
/// schedule -> evaluate/checkpoint -> reference pass (and a fused probe's risk) -> risk -> beta -> forward/backward of
/// <c>(1 - beta) * SFT + beta * KL(pi_ref || pi_theta)</c> -> optimizer -> one log line.
/// Beta enters the training graph as per-token weights, so one backward pass gives exactly the blend
/// <c>(1 - beta) * grad SFT + beta * grad KL</c> that an optimizer wrapper would form from two. The frozen reference is the
/// starting model in a second session that reads the training session's frozen weights (with LoRA, the base weights are
/// held once). The output is the input graph with the trained weights merged in: zero inference-time cost.
/// </summary>
public static class FineTuner
{
    /// <summary>The prompt-mask input a fused probe reads in the reference pass.</summary>
    public const string PromptMask = "prompt_mask";

    /// <summary>Runs the fine-tune. Cancellation stops after the current step, with a checkpoint when there is a run folder.</summary>
    public static FineTuneResult Run(FineTuneOptions options, IProgress<StepLog>? progress = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var safety = options.Safety;
        var betaMap = BetaMap.Parse(safety.BetaMap);
        bool standard = betaMap is FixedBetaMap { Beta: 0 } && safety.Penalty == Penalty.Kl;
        var kind = safety.Penalty switch
        {
            Penalty.Kl when !standard => ResponseLossKind.CrossEntropyAndKl,
            Penalty.Constrained => ResponseLossKind.Constrained,
            _ => ResponseLossKind.CrossEntropy,
        };
        var risk = safety.RiskKind == "none" ? null : options.RiskSource;
        bool needLogProbs = kind != ResponseLossKind.CrossEntropy;
        bool needReference = needLogProbs || risk?.NeedsReferencePass == true;

        // ---- the trained graph: LoRA adapters on the projections, or every weight ----
        var model = options.Model;
        LoraPass? lora = null;
        IReadOnlyList<string>? trainable = null;
        if (options.Lora is not null)
        {
            model = Model.FromBytes(options.Model.ToBytes(), displayName: "LoRA model");
            lora = new LoraPass(options.Lora with { Seed = options.Seed });
            PassRunner.Run(model, lora);
            trainable = lora.TrainableParameters;
        }
        var optimizer = safety.Penalty == Penalty.L2 ? options.Optimizer with { ProximalRho = 0 } : options.Optimizer;
        using var session = TrainingSession.Create(model, new TrainingOptions
        {
            Runtime = options.Runtime,
            Optimizer = optimizer,
            Trainable = trainable,
            Backward = options.Backward,
            Objective = TrainingObjective.Response(kind),
        });
        using var reference = needReference
            ? ReferencePolicy.Create(options.Model, new ReferenceOptions
            {
                Runtime = options.Runtime,
                SharedWeights = session.SharedWeights,
                LogProbs = needLogProbs,
                Extend = risk?.ExtendReference,
            })
            : null;

        // ---- resume ----
        using var run = options.RunDirectory is { } dir ? new RunFolder(dir) : null;
        long first = 0;
        if (run is not null && options.Resume && Checkpoint.Exists(run.Checkpoints))
        {
            var extra = Checkpoint.Load(session, run.Checkpoints);
            betaMap.RestoreState(extra["beta_map"]);
            first = session.Step;
        }
        if (run is not null)
        {
            if (options.Record is { } record) run.WriteOptions(record);
            run.OpenLogs(first > 0 ? first : null);
        }

        var schedule = new CosineSchedule(options.Optimizer.LearningRate, options.WarmupSteps, options.Plan.Steps, options.MinLearningRate);
        var log = new List<StepLog>();
        var evaluations = new List<(long, JsonObject)>();
        var times = new List<double>();
        long tokens = 0;
        bool cancelled = false;
        var clock = Stopwatch.StartNew();
        for (long step = first; step < options.Plan.Steps; step++)
        {
            if (cancellation.IsCancellationRequested) { cancelled = true; break; }
            var sw = Stopwatch.StartNew();
            // schedule
            session.SetLearningRate(schedule.At(step));

            // reference pass (log-probabilities at the response positions; a fused probe's risk) and risk
            var batches = options.Plan.Step(step);
            long responseTokens = batches.Sum(b => (long)b.ResponseTokens);
            if (responseTokens == 0) throw new InvalidDataException($"step {step + 1} has no response tokens to train on.");
            var refs = new ReferenceOutputs?[batches.Count];
            var scores = new RiskScores?[batches.Count];
            try
            {
                for (int m = 0; m < batches.Count; m++)
                {
                    if (reference is not null)
                    {
                        using var refInputs = ReferenceInputs(reference, batches[m]);
                        refs[m] = reference.Run(batches[m].Tokens, batches[m].ResponseIndex(), refInputs.Values);
                    }
                    if (risk is not null) scores[m] = risk.Score(batches[m], refs[m]);
                }

                // beta: one for the batch, or one per example
                var exampleRisks = risk is null ? null : scores.SelectMany(s => s!.PerExample).ToArray();
                double? batchRisk = exampleRisks is null ? null
                    : safety.Aggregation == JudgeAggregation.Max ? exampleRisks.Max() : exampleRisks.Average();
                double[]? exampleBetas = null;
                double beta;
                if (safety.Weighting == RiskWeighting.Example && exampleRisks is not null)
                {
                    exampleBetas = [.. exampleRisks.Select(betaMap.Next)];
                    beta = exampleBetas.Average();
                }
                else beta = betaMap.Next(batchRisk ?? 0);
                if (safety.Penalty == Penalty.L2) session.SetProximalRho(beta * safety.PenaltyStrength);

                // forward/backward of the weighted objective, accumulated over the micro-batches
                session.LazyResetGrad();
                double loss = 0, sft = 0, other = 0;
                int example0 = 0;
                for (int m = 0; m < batches.Count; m++)
                {
                    var b = batches[m];
                    var betas = exampleBetas is null ? null : exampleBetas.AsSpan(example0, b.Examples.Count).ToArray();
                    using var inputs = StepInputs(kind, b, refs[m], beta, betas, responseTokens, safety);
                    loss += session.TrainStep(b.Tokens, inputs.Values);
                    var metrics = session.Metrics;
                    double share = (double)b.ResponseTokens / responseTokens;
                    sft += share * metrics[ResponseNames.MeanSft];
                    if (metrics.TryGetValue(ResponseNames.MeanKl, out var kl)) other += share * kl;
                    if (metrics.TryGetValue(ResponseNames.MeanConstrained, out var c)) other += share * c;
                    example0 += b.Examples.Count;
                    tokens += (long)b.Tokens.BatchSize * b.Tokens.SequenceLength;
                }
                if (!double.IsFinite(loss))
                    throw new TrainingDivergedException($"step {step + 1}: the loss is {loss.ToString(CultureInfo.InvariantCulture)}; training stopped" +
                        (run is null ? "." : $" and the last good checkpoint (step {session.Step}) in {run.Checkpoints} is kept."));

                // optimizer
                double? norm = options.ClipNorm is { } clip ? session.ClipGradNorm(clip) : null;
                session.OptimizerStep();

                // one log line
                sw.Stop();
                times.Add(sw.Elapsed.TotalMilliseconds);
                var entry = new StepLog(session.Step, options.Plan.Steps, session.LearningRate, loss, sft,
                    kind == ResponseLossKind.CrossEntropy ? null : other, batchRisk, beta, exampleRisks, exampleBetas,
                    [.. batches.SelectMany(b => b.Examples.Select(r => r.Id))], batches.Sum(b => (long)b.Tokens.BatchSize * b.Tokens.SequenceLength),
                    responseTokens, sw.Elapsed.TotalMilliseconds, scores.Sum(s => s?.Failures ?? 0), norm);
                log.Add(entry);
                run?.Audit(AuditLine(entry));
                run?.Metric(MetricLine(entry));
                progress?.Report(entry);
            }
            finally
            {
                foreach (var r in refs) r?.Dispose();
            }

            // evaluate and checkpoint
            bool last = session.Step == options.Plan.Steps;
            if (options.Evaluate is not null && options.EvaluateEvery > 0 && (session.Step % options.EvaluateEvery == 0 || last))
            {
                var (merged, generation) = Export(options, session, lora);
                var figures = options.Evaluate(session.Step, merged, generation);
                evaluations.Add((session.Step, figures));
                run?.Metric(new JsonObject { ["step"] = session.Step, ["eval"] = figures.DeepClone() });
            }
            if (run is not null && (session.Step % options.CheckpointEvery == 0 || last))
                Checkpoint.Save(session, run.Checkpoints, new JsonObject { ["beta_map"] = betaMap.SaveState() });
        }
        clock.Stop();
        if (cancelled && run is not null && session.Step > 0)
            Checkpoint.Save(session, run.Checkpoints, new JsonObject { ["beta_map"] = betaMap.SaveState() });

        var (output, generationOutput) = Export(options, session, lora);
        if (run is not null && !cancelled)
        {
            output.Save(run.ModelPath);
            generationOutput?.Save(run.GenerationModelPath);
        }
        var steady = times.Count > 3 ? times.Skip(3).ToList() : times;
        double seconds = times.Sum() / 1000;
        return new FineTuneResult(output, generationOutput, session.Step, first, seconds, steady.Count == 0 ? 0 : Median(steady),
            seconds > 0 ? tokens / seconds : 0, log, evaluations, cancelled, (risk as CriticRisk)?.Failures ?? 0);
    }

    /// <summary>The merged model (asserted to have the input's graph) and, when given, the generation graph with the same weights.</summary>
    private static (Model Model, Model? Generation) Export(FineTuneOptions options, TrainingSession session, LoraPass? lora)
    {
        var merged = lora is null ? session.CurrentModel() : LoraMerge.Merge(session.CurrentModel(), lora.Adapters);
        ModelExport.AssertSameGraph(options.Model, merged);
        return (merged, options.GenerationModel is { } g ? ModelExport.TransplantWeights(merged, g) : null);
    }

    private static StepInputBag ReferenceInputs(ReferencePolicy reference, TrainingBatch batch)
    {
        var inputs = new StepInputBag();
        foreach (var name in reference.StepInputs)
        {
            if (name != PromptMask) throw new InvalidOperationException($"the reference pass needs '{name}', which the fine-tuning loop does not provide.");
            inputs.Add(name, OrtValues.Wrap(batch.PromptMask, batch.Tokens.BatchSize, batch.Tokens.SequenceLength));
        }
        return inputs;
    }

    /// <summary>The objective's per-token inputs for one micro-batch (weights already divided by the step's response tokens).</summary>
    private static StepInputBag StepInputs(ResponseLossKind kind, TrainingBatch b, ReferenceOutputs? reference, double beta, double[]? exampleBetas,
        long stepTokens, SafetyOptions safety)
    {
        var bag = new StepInputBag();
        var positions = b.ResponseTokenPositions();
        int n = positions.Length;
        bag.Add(ResponseNames.Index, OrtValues.Wrap(b.ResponseIndex(), n));
        float inv = 1f / stepTokens;
        double BetaOf(int example) => exampleBetas?[example] ?? beta;
        switch (kind)
        {
            case ResponseLossKind.CrossEntropy:
                bag.Add(ResponseNames.SftWeight, OrtValues.Wrap([.. positions.Select(p => (float)(1 - BetaOf(p.Example)) * inv)], n));
                break;
            case ResponseLossKind.CrossEntropyAndKl:
                bag.Add(ResponseNames.SftWeight, OrtValues.Wrap([.. positions.Select(p => (float)(1 - BetaOf(p.Example)) * inv)], n));
                bag.Add(ResponseNames.KlWeight, OrtValues.Wrap([.. positions.Select(p => (float)BetaOf(p.Example) * inv)], n));
                bag.Borrow(ResponseNames.ReferenceLogProbs, reference![ResponseNames.ReferenceLogProbs]);
                break;
            case ResponseLossKind.Constrained:
                bag.Add(ResponseNames.ConstrainedWeight, OrtValues.Wrap([.. positions.Select(_ => inv)], n));
                bag.Add(ResponseNames.TokenBeta, OrtValues.Wrap([.. positions.Select(p => (float)safety.ConstrainedBeta(p.T))], n));
                bag.Borrow(ResponseNames.ReferenceTokenLogProbs, reference![ResponseNames.ReferenceTokenLogProbs]);
                break;
        }
        return bag;
    }

    /// <summary>Step inputs by name: owns those it made, borrows the reference's outputs.</summary>
    private sealed class StepInputBag : IDisposable
    {
        private readonly OrtValueBag _owned = new();
        public Dictionary<string, OrtValue> Values { get; } = new(StringComparer.Ordinal);
        public void Add(string name, OrtValue value) => Values[name] = _owned.Add(name, value);
        public void Borrow(string name, OrtValue value) => Values[name] = value;
        public void Dispose() => _owned.Dispose();
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

    private static double Median(List<double> xs)
    {
        var s = xs.Order().ToList();
        return s.Count % 2 == 1 ? s[s.Count / 2] : (s[s.Count / 2 - 1] + s[s.Count / 2]) / 2;
    }
}
