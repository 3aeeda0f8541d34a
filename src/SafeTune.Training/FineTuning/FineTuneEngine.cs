using System.Text.Json.Nodes;
using SafeTune.Autodiff.Losses;
using SafeTune.Autodiff.Lora;
using SafeTune.Onnx;
using SafeTune.Runtime;
using SafeTune.Runtime.Training;
using SafeTune.Safety.Probes;
using SafeTune.Training.Risk;
using OrtValue = Microsoft.ML.OnnxRuntime.OrtValue;

namespace SafeTune.Training.FineTuning;

/// <summary>
/// The sessions of a safe fine-tune and its optimizer step. The trained graph is the model with LoRA adapters (or every
/// weight); the frozen reference policy is the starting model in a second session that reads the training session's
/// frozen weights (with LoRA, the base weights are held once). Beta enters the training graph as per-token weights, so
/// one backward pass gives exactly the blend <c>(1 - beta) * grad SFT + beta * grad KL</c> that an optimizer wrapper
/// would form from two.
/// </summary>
internal sealed class FineTuneEngine : IDisposable
{
    private readonly FineTuneOptions _options;
    private readonly LoraModel? _lora;
    private readonly ResponseLossKind _kind;

    private FineTuneEngine(FineTuneOptions options, LoraModel? lora, ResponseLossKind kind, TrainingSession session, ReferencePolicy? reference,
        RiskSource? risk, BetaPolicy betas)
    {
        _options = options;
        _lora = lora;
        _kind = kind;
        Session = session;
        Reference = reference;
        Risk = risk;
        Betas = betas;
    }

    /// <summary>The training session (the trained graph, its optimizer and flat buffers).</summary>
    public TrainingSession Session { get; }

    /// <summary>The frozen reference policy; null when the method needs no reference pass (standard fine-tuning).</summary>
    public ReferencePolicy? Reference { get; }

    /// <summary>The risk source; null without one.</summary>
    public RiskSource? Risk { get; }

    /// <summary>The risk-to-beta policy (its map holds the state).</summary>
    public BetaPolicy Betas { get; }

    /// <summary>The objective the training graph computes.</summary>
    public ResponseLossKind Objective => _kind;

    /// <summary>Builds the graphs and opens the sessions.</summary>
    public static FineTuneEngine Create(FineTuneOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var safety = options.Safety;
        var betaMap = safety.BetaMap.Start();
        bool standard = betaMap is FixedBetaMap { Beta: 0 } && safety.Penalty == Penalty.Kl;
        var kind = safety.Penalty switch
        {
            Penalty.Kl when !standard => ResponseLossKind.CrossEntropyAndKl,
            Penalty.Constrained => ResponseLossKind.Constrained,
            _ => ResponseLossKind.CrossEntropy,
        };
        var risk = safety.Risk is RiskSpec.None ? null : options.RiskSource;
        bool needLogProbs = kind != ResponseLossKind.CrossEntropy;
        bool needReference = needLogProbs || risk?.NeedsReferencePass == true;

        // The trained graph: LoRA adapters on the projections, or every weight.
        var model = options.Model;
        LoraModel? lora = null;
        IReadOnlyList<string>? trainable = null;
        if (options.Lora is not null)
        {
            lora = LoraModel.Wrap(options.Model, options.Lora with { Seed = options.Seed });
            model = lora.Model;
            trainable = lora.TrainableParameters;
        }
        var session = TrainingSession.Create(model, new TrainingOptions
        {
            Runtime = options.Runtime,
            Optimizer = safety.Penalty == Penalty.L2 ? options.Optimizer with { ProximalRho = 0 } : options.Optimizer,
            Trainable = trainable,
            Selection = options.Selection,
            Backward = options.Backward,
            CheckpointActivations = options.CheckpointActivations,
            BaseDtype = options.BaseDtype,
            ExpectedResponseRows = options.ExpectedResponseRows,
            Objective = TrainingObjective.Response(kind),
        });
        try
        {
            var reference = needReference
                ? ReferencePolicy.Create(lora is null ? session.StartingModel : options.Model, new ReferenceOptions
                {
                    Runtime = options.Runtime,
                    SharedWeights = session.SharedWeights,
                    LogProbs = needLogProbs,
                    HiddenRows = session.ReadsReferenceHidden,
                    Extend = risk?.ExtendReference,
                })
                : null;
            return new FineTuneEngine(options, lora, kind, session, reference, risk, new BetaPolicy(betaMap, safety.Aggregation));
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The forward and backward passes of one optimizer step on <paramref name="batches"/> (its micro-batches): the
    /// reference pass (log-probabilities at the response positions, a fused probe's risk), the risk, beta (per batch or
    /// per example), forward and backward of the weighted objective accumulated over the micro-batches. Returns the loss;
    /// <see cref="TrainingLoop"/> sets the learning rate before, clips and steps the optimizer after, and
    /// <see cref="Logged"/> then reads the step's figures.
    /// </summary>
    public double ForwardBackward(long step, IReadOnlyList<TrainingBatch> batches)
    {
        ArgumentNullException.ThrowIfNull(batches);
        var safety = _options.Safety;
        long responseTokens = batches.Sum(b => (long)b.ResponseTokens);
        if (responseTokens == 0) throw new InvalidDataException($"step {step + 1} has no response tokens to train on.");
        var refs = new ReferenceOutputs?[batches.Count];
        var scores = new RiskScores?[batches.Count];
        if (!_memoryChecked)
        {
            EnsureMemory(batches);
            _memoryChecked = true;
        }
        try
        {
            // reference pass and risk
            for (int m = 0; m < batches.Count; m++)
            {
                if (Reference is not null)
                {
                    using var refInputs = ReferenceInputs(batches[m]);
                    refs[m] = Reference.Run(batches[m].Tokens, batches[m].ResponseIndex(), refInputs.Values);
                }
                if (Risk is not null) scores[m] = Risk.Score(batches[m], refs[m]);
            }

            // beta: one for the batch, or one per example
            var exampleRisks = Risk is null ? null : scores.SelectMany(s => s!.PerExample).ToArray();
            var (batchRisk, beta, exampleBetas) = Betas.Next(exampleRisks);
            if (safety.Penalty == Penalty.L2) Session.SetProximalRho(beta * safety.PenaltyStrength);

            // forward/backward of the weighted objective, accumulated over the micro-batches
            double loss = 0, sft = 0, other = 0;
            int example0 = 0;
            for (int m = 0; m < batches.Count; m++)
            {
                var b = batches[m];
                var betas = exampleBetas?.AsSpan(example0, b.Examples.Count).ToArray();
                using var inputs = StepInputs(b, refs[m], beta, betas, responseTokens);
                loss += Session.TrainStep(b.Tokens, inputs.Values);
                var metrics = Session.Metrics;
                double share = (double)b.ResponseTokens / responseTokens;
                sft += share * metrics[ResponseNames.MeanSft];
                if (metrics.TryGetValue(ResponseNames.MeanKl, out var kl)) other += share * kl;
                if (metrics.TryGetValue(ResponseNames.MeanConstrained, out var c)) other += share * c;
                example0 += b.Examples.Count;
            }
            _pending = new PendingStep(sft, _kind == ResponseLossKind.CrossEntropy ? null : other, batchRisk, beta, exampleRisks, exampleBetas,
                [.. batches.SelectMany(b => b.Examples.Select(r => r.Id))], batches.Sum(b => (long)b.Tokens.BatchSize * b.Tokens.SequenceLength),
                responseTokens, scores.Sum(s => s?.Failures ?? 0));
            return loss;
        }
        finally
        {
            foreach (var r in refs) r?.Dispose();
        }
    }

    /// <summary>
    /// One optimizer step on <paramref name="batches"/> at the session's current learning rate, through
    /// <see cref="TrainingLoop"/>: <see cref="ForwardBackward"/>, clipping and the optimizer.
    /// </summary>
    public StepLog Step(IReadOnlyList<TrainingBatch> batches)
    {
        StepLog? entry = null;
        TrainingLoop.Run(Session, new TrainingLoopOptions { Steps = Session.Step + 1, Schedule = new ConstantSchedule(Session.LearningRate), ClipNorm = _options.ClipNorm },
            step => ForwardBackward(step, batches), done => entry = Logged(done));
        return entry!;
    }

    /// <summary>The log line of the step <see cref="TrainingLoop"/> just took (after <see cref="ForwardBackward"/>).</summary>
    public StepLog Logged(LoopStep done)
    {
        var p = _pending ?? throw new InvalidOperationException("no step was taken since the last log line.");
        _pending = null;
        return new StepLog(Session.Step, _options.Plan.Steps, done.LearningRate, done.Loss, p.Sft, p.Other, p.BatchRisk, p.Beta, p.ExampleRisks,
            p.ExampleBetas, p.Examples, p.Tokens, p.ResponseTokens, done.Milliseconds, p.RiskFailures, done.GradientNorm);
    }

    /// <summary>The figures of a step between its backward pass and its log line.</summary>
    private sealed record PendingStep(double Sft, double? Other, double? BatchRisk, double Beta, double[]? ExampleRisks, double[]? ExampleBetas,
        IReadOnlyList<string> Examples, long Tokens, long ResponseTokens, int RiskFailures);

    private PendingStep? _pending;

    /// <summary>
    /// Predicts the peak memory of a step on micro-batches like <paramref name="batches"/> (the reference pass, the step's
    /// inputs and the training graph) without running it.
    /// </summary>
    public MemoryEstimate EstimateMemory(IReadOnlyList<TrainingBatch> batches)
    {
        ArgumentNullException.ThrowIfNull(batches);
        var b = batches.MaxBy(x => (long)x.Tokens.BatchSize * x.Tokens.SequenceLength + x.ResponseTokens)!;
        int n = b.ResponseTokens;
        long referenceActivations = 0;
        if (Reference is not null)
        {
            using var refInputs = ReferenceInputs(b);
            referenceActivations = Reference.EstimateActivations(b.Tokens, n, refInputs.Values);
        }
        return Session.EstimateMemory(b.Tokens, Session.ResponseInputShapes(n), referenceActivations);
    }

    private void EnsureMemory(IReadOnlyList<TrainingBatch> batches)
    {
        var estimate = EstimateMemory(batches);
        Estimate = estimate;
        MemoryEstimate.EnsureFits(estimate, "a training step",
            "Lower --micro-batch (gradients accumulate to the same --batch-size) or --max-length"
            + MemoryEstimate.SettingsAdvice(_options.CheckpointActivations, _lora is not null, _options.BaseDtype)
            + (_lora is null ? ", or train LoRA adapters (--lora) instead of --full." : "."));
    }

    /// <summary>The peak memory predicted before the first step (null until then).</summary>
    public MemoryEstimate? Estimate { get; private set; }

    /// <summary>The merged model (asserted to have the input's graph) and, when given, the generation graph with the same weights.</summary>
    public (Model Model, Model? Generation) Export()
    {
        var merged = _lora is null ? Session.CurrentModelAsGiven() : _lora.Merge(Session.CurrentModel());
        ModelExport.AssertSameGraph(_options.Model, merged);
        return (merged, _options.GenerationModel is { } g ? ModelExport.TransplantWeights(merged, g) : null);
    }

    /// <summary>Saves a checkpoint (weights, optimizer moments, beta-map state) into <paramref name="directory"/>.</summary>
    public void Save(string directory) => Checkpoint.Save(Session, directory, new JsonObject { ["beta_map"] = Betas.Map.SaveState() });

    /// <summary>Restores a checkpoint saved by <see cref="Save"/>; returns the step it was taken at.</summary>
    public long Restore(string directory)
    {
        var extra = Checkpoint.Load(Session, directory, _options.Plan.Steps);
        Betas.Map.RestoreState(extra["beta_map"]);
        return Session.Step;
    }

    private StepInputBag ReferenceInputs(TrainingBatch batch)
    {
        var inputs = new StepInputBag();
        foreach (var name in Reference!.StepInputs)
        {
            if (name != ProbeGraph.DefaultPromptMaskInput) throw new InvalidOperationException($"the reference pass needs '{name}', which the fine-tuning loop does not provide.");
            inputs.Add(name, OrtValues.Wrap(batch.PromptMask, batch.Tokens.BatchSize, batch.Tokens.SequenceLength));
        }
        return inputs;
    }

    /// <summary>The objective's per-token inputs for one micro-batch (weights already divided by the step's response tokens).</summary>
    private StepFeeds StepInputs(TrainingBatch b, ReferenceOutputs? reference, double beta, double[]? exampleBetas, long stepTokens)
    {
        var positions = b.ResponseTokenPositions();
        var weights = TokenWeights.PerToken(i => exampleBetas?[positions[i].Example] ?? beta, stepTokens);
        var source = new ResponseFeedSource(b.ResponseIndex(), weights, i => _options.Safety.ConstrainedBeta(positions[i].T));
        return new StepFeeds(Session, ResponseLoss.Of(_kind).Feeds(source), reference);
    }

    private bool _memoryChecked;

    /// <summary>The reference pass's inputs by name, owned.</summary>
    private sealed class StepInputBag : IDisposable
    {
        private readonly OrtValueBag _owned = new();
        public Dictionary<string, OrtValue> Values { get; } = new(StringComparer.Ordinal);
        public void Add(string name, OrtValue value) => Values[name] = _owned.Add(name, value);
        public void Dispose() => _owned.Dispose();
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Reference?.Dispose();
        Session.Dispose();
    }
}
