using System.Text.Json.Nodes;
using SafeTune.Autodiff;
using SafeTune.Autodiff.Lora;
using SafeTune.Autodiff.Losses;
using SafeTune.Onnx;

namespace SafeTune.Runtime.Training;

/// <summary>Options of <see cref="Fit.Run"/>.</summary>
public sealed record FitOptions
{
    /// <summary>Optimizer steps to take in total (a resumed run continues up to this count).</summary>
    public int Steps { get; init; } = 10;
    /// <summary>The update rule and its hyperparameters (AdamW by default).</summary>
    public OptimizerConfig Optimizer { get; init; } = new();
    /// <summary>The learning-rate schedule; null keeps the optimizer's learning rate constant.</summary>
    public ILearningRateSchedule? Schedule { get; init; }
    /// <summary>Clip the global gradient norm to this value before each step.</summary>
    public double? ClipNorm { get; init; }
    /// <summary>The trainable initializers; null trains the parameters <see cref="Selection"/> chooses.</summary>
    public IReadOnlyList<string>? Trainable { get; init; }
    /// <summary>How the parameters are chosen for full fine-tuning (buffers frozen, tied copies re-tied, overrides by name).</summary>
    public ParameterSelection Selection { get; init; } = new();
    /// <summary>Train LoRA adapters instead of the weights; the result is merged back into the original graph.</summary>
    public LoraOptions? Lora { get; init; }
    /// <summary>Where checkpoints go; null disables them.</summary>
    public string? CheckpointDirectory { get; init; }
    /// <summary>Save a checkpoint every this many steps (and at the end).</summary>
    public int CheckpointEvery { get; init; } = 1;
    /// <summary>Continue from the checkpoint in <see cref="CheckpointDirectory"/> when there is one.</summary>
    public bool Resume { get; init; }
    /// <summary>Execution provider and threads.</summary>
    public SessionConfig Runtime { get; init; } = new();
    /// <summary>How the backward graph is built.</summary>
    public BackwardOptions Backward { get; init; } = new();
    /// <summary>
    /// When set, each step minimizes <c>(1 - beta) * SFT + beta * KL(pi_ref || pi_theta)</c> on the labelled (response)
    /// positions with this fixed beta, the starting model as pi_ref in a reference pass that shares the frozen weights: the
    /// regularized fine-tuning step of <c>safetune train</c>, on one batch. Null trains plain cross-entropy.
    /// </summary>
    public double? KlBeta { get; init; }
    /// <summary>Recompute each transformer block's activations in the backward pass (see <see cref="TrainingOptions.CheckpointActivations"/>).</summary>
    public bool CheckpointActivations { get; init; }
    /// <summary>The element type the frozen weights are held in (see <see cref="TrainingOptions.BaseDtype"/>).</summary>
    public Onnx.ElementType BaseDtype { get; init; } = Onnx.ElementType.Float;
    /// <summary>Predict the first step's peak memory and stop before it when it would not fit (default true).</summary>
    public bool CheckMemory { get; init; } = true;
    /// <summary>Where to record the memory after each phase (model, graphs and sessions, first step, all steps); null records nothing.</summary>
    internal MemoryAccount? Memory { get; init; }

    /// <summary>Throws <see cref="UserInputException"/> naming the option when a value is out of range.</summary>
    public void Validate()
    {
        if (Steps < 1) throw new OptionException("steps", $"{{steps}} must be at least 1, not {Steps}.");
        if (CheckpointEvery < 1) throw new UserInputException($"the checkpoint interval must be at least 1, not {CheckpointEvery}.");
        if (ClipNorm is { } c && !(c > 0)) throw new UserInputException($"the clipping norm must be positive, not {c}.");
        if (Resume && CheckpointDirectory is null) throw new UserInputException("resuming needs a checkpoint folder.");
        if (KlBeta is { } b && !(b >= 0 && b <= 1)) throw new OptionException("kl", $"{{kl}} must be a beta between 0 and 1, not {b}.");
        if (CheckpointDirectory is { } dir && SafePaths.KindOf(dir) is var kind && kind is not (FileKind.Missing or FileKind.Directory))
            throw new OptionException("checkpoint-dir", $"{{checkpoint-dir}} {dir} is {SafePaths.Describe(kind)}, not a folder.");
        if (Lora is not null && Trainable is not null) throw new UserInputException("LoRA chooses the trainable parameters itself; give either LoRA options or a trainable list.");
        if (Lora is not null && !Selection.IsDefault) throw new OptionException("lora", "{lora} trains adapters only; {trainable}, {frozen} and {keep-untied} choose weights for full fine-tuning.");
        if (Trainable is not null && !Selection.IsDefault) throw new UserInputException("give either a trainable list or a parameter selection, not both.");
        Selection.Validate();
        Lora?.Validate();
        Optimizer.Validate();
    }
}

/// <summary>What <see cref="Fit.Run"/> did.</summary>
/// <param name="Losses">The loss of each step taken in this run, computed before that step's update.</param>
/// <param name="FirstStep">The 0-based index of the first step of this run (non-zero when resumed).</param>
/// <param name="MsPerStep">The median step time after the first 3 steps of this run (all steps when there are fewer).</param>
/// <param name="TokensPerStep">Tokens in the batch (batch x sequence).</param>
/// <param name="PeakRssMb">The process's peak working set in MiB.</param>
/// <param name="Cancelled">True when the run stopped early because it was cancelled (after a complete step).</param>
/// <param name="Model">The forward model with the trained weights.</param>
public sealed record FitResult(IReadOnlyList<double> Losses, long FirstStep, double MsPerStep, long TokensPerStep, double PeakRssMb, bool Cancelled, Model Model)
{
    /// <summary>The peak memory predicted before the first step.</summary>
    public MemoryEstimate? Estimate { get; init; }
}

/// <summary>One step's numbers, for progress display.</summary>
public readonly record struct FitProgress(long Step, long TotalSteps, double Loss, double LearningRate, double Milliseconds);

/// <summary>
/// Trains on one batch for a number of steps: the standard "can this model train at all?" check, and the engine's
/// reference loop. Each step of <see cref="TrainingLoop"/>: schedule -> forward/backward -> (clip) -> optimizer -> checkpoint.
/// </summary>
public static class Fit
{
    /// <summary>Runs the loop. Cancellation stops after the current step, with a checkpoint when checkpoints are on.</summary>
    public static FitResult Run(Model model, TokenBatch batch, FitOptions options, IProgress<FitProgress>? progress = null, CancellationToken cancellation = default)
    {
        options.Validate();
        var baseModel = model;
        var trainable = options.Trainable;
        LoraModel? lora = null;
        if (options.Lora is not null)
        {
            lora = LoraModel.Wrap(model, options.Lora);
            model = lora.Model;
            trainable = lora.TrainableParameters;
            options.Memory?.Mark("LoRA adapters added");
        }
        var responseIndex = ResponseLosses.Index(batch.Labels);
        using var session = TrainingSession.Create(model, new TrainingOptions
        {
            Runtime = options.Runtime,
            Optimizer = options.Optimizer,
            Trainable = trainable,
            Selection = options.Selection,
            Backward = options.Backward,
            CheckpointActivations = options.CheckpointActivations,
            BaseDtype = options.BaseDtype,
            ExpectedResponseRows = responseIndex.Length,
            Objective = options.KlBeta is null ? TrainingObjective.TokenCrossEntropy : TrainingObjective.Response(ResponseLossKind.CrossEntropyAndKl),
        });
        using var reference = options.KlBeta is null ? null
            : ReferencePolicy.Create(lora is null ? session.StartingModel : baseModel,
                new ReferenceOptions { Runtime = options.Runtime, SharedWeights = session.SharedWeights, HiddenRows = session.ReadsReferenceHidden });
        if (reference is not null && responseIndex.Length == 0) throw new OptionException("kl", "{kl} needs labelled positions: every label of the batch is -100.");
        options.Memory?.Mark("training graphs built, sessions open (frozen weights shared)", session.SharedWeights.Bytes);
        options.Memory?.Mark("trainable parameters, gradients, optimizer moments", 4L * session.Layout.ParameterElements * sizeof(float));
        var estimate = reference is null ? session.EstimateMemory(batch)
            : session.EstimateMemory(batch, session.ResponseInputShapes(responseIndex.Length), reference.EstimateActivations(batch, responseIndex.Length));
        options.Memory?.Mark("predicted peak of a step (before it runs)", estimate.TotalBytes);
        if (options.CheckMemory)
            MemoryEstimate.EnsureFits(estimate, "a training step on this batch",
                "Use a batch file with fewer or shorter rows" + MemoryEstimate.SettingsAdvice(options.CheckpointActivations, options.Lora is not null, options.BaseDtype)
                + (options.Lora is null ? ", or --lora to train adapters instead of every weight." : "."));
        if (options.Resume && Checkpoint.Exists(options.CheckpointDirectory!)) Checkpoint.Load(session, options.CheckpointDirectory!, options.Steps);
        var loop = TrainingLoop.Run(session, new TrainingLoopOptions
        {
            Steps = options.Steps,
            Schedule = options.Schedule ?? new ConstantSchedule(options.Optimizer.LearningRate),
            ClipNorm = options.ClipNorm,
            CheckpointDirectory = options.CheckpointDirectory,
        }, _ =>
        {
            float loss;
            if (reference is null) loss = session.TrainStep(batch);
            else
            {
                // reference pass, then the blended objective with a fixed beta, weights per response token
                using var refOut = reference.Run(batch, responseIndex);
                var weights = TokenWeights.Fixed((float)options.KlBeta!.Value, responseIndex.Length);
                using var inputs = new StepFeeds(session, ResponseLoss.CrossEntropyAndKl.Feeds(new ResponseFeedSource(responseIndex, weights)), refOut);
                loss = session.TrainStep(batch, inputs.Values);
            }
            return loss;
        }, done =>
        {
            if (done.Losses.Count == 1) options.Memory?.Mark("first step (activations, workspace)");
            if (options.CheckpointDirectory is { } dir && (session.Step % options.CheckpointEvery == 0 || session.Step == options.Steps))
                Checkpoint.Save(session, dir, new JsonObject { ["losses"] = new JsonArray([.. done.Losses.Select(l => (JsonNode)l)]) });
            progress?.Report(new FitProgress(session.Step, options.Steps, done.Loss, session.LearningRate, done.Milliseconds));
        }, cancellation);
        if (loop.Cancelled && options.CheckpointDirectory is { } d && session.Step > 0) Checkpoint.Save(session, d);
        options.Memory?.Mark("all steps");
        return new FitResult(loop.Losses, loop.FirstStep, StepTimes.SteadyMedian(loop.Milliseconds), (long)batch.BatchSize * batch.SequenceLength,
            MemoryAccount.PeakMb(), loop.Cancelled, lora is null ? session.CurrentModel() : lora.Merge(session.CurrentModel())) { Estimate = estimate };
    }
}
