using SafeTune.Autodiff;
using SafeTune.Autodiff.Lora;
using SafeTune.Onnx;
using SafeTune.Runtime;
using SafeTune.Runtime.Training;
using SafeTune.Training.Risk;

namespace SafeTune.Training.FineTuning;

/// <summary>Options of <see cref="FineTuner.Run"/>.</summary>
public sealed record FineTuneOptions
{
    /// <summary>The starting (aligned) model: a forward graph with a logits output. It is also the frozen reference.</summary>
    public required Model Model { get; init; }

    /// <summary>The model's file, when it came from one (recorded, and compared with a probe's model hash).</summary>
    public string? ModelPath { get; init; }

    /// <summary>
    /// The same model as a key/value-cache graph (same initializer names), for generation: exported beside the merged
    /// model with the trained weights. Optional.
    /// </summary>
    public Model? GenerationModel { get; init; }

    /// <summary>The batches of every step.</summary>
    public required ITrainingPlan Plan { get; init; }

    /// <summary>LoRA adapters (default: r = 64, alpha = 16 on every attention and MLP projection, as the paper); null trains every weight.</summary>
    public LoraOptions? Lora { get; init; } = new() { Rank = 64, Alpha = 16 };

    /// <summary>Which weights full fine-tuning trains (without <see cref="Lora"/>): the parameters, buffers frozen, tied copies re-tied.</summary>
    public ParameterSelection Selection { get; init; } = new();

    /// <summary>The optimizer (default AdamW, weight decay 0.01). Its learning rate is the schedule's peak.</summary>
    public OptimizerConfig Optimizer { get; init; } = new() { LearningRate = 2e-4, WeightDecay = 0.01 };

    /// <summary>Linear warm-up steps before the cosine decay (the paper: 5).</summary>
    public int WarmupSteps { get; init; } = 5;

    /// <summary>The learning rate at the end of the cosine decay.</summary>
    public double MinLearningRate { get; init; }

    /// <summary>Clip the global gradient norm to this value; null for no clipping.</summary>
    public double? ClipNorm { get; init; } = 1.0;

    /// <summary>Risk source, beta map, weighting and penalty.</summary>
    public SafetyOptions Safety { get; init; } = new();

    /// <summary>The risk source, as <see cref="RiskSources.Create"/> builds it from <see cref="SafetyOptions.Risk"/> (a judge or a probe); required unless that is none. Owned by the caller.</summary>
    public RiskSource? RiskSource { get; init; }

    /// <summary>Where the run keeps its logs, checkpoints and output model; null keeps nothing on disk.</summary>
    public string? RunDirectory { get; init; }

    /// <summary>
    /// Continue from the run folder's checkpoint when there is one. The resumed run's <see cref="Record"/> must equal the
    /// recorded <c>options.json</c> (the execution provider aside); every difference is named.
    /// </summary>
    public bool Resume { get; init; }

    /// <summary>Replace a run already in the run folder (its checkpoints, logs and outputs). Without it, or <see cref="Resume"/>, a used run folder is refused.</summary>
    public bool Overwrite { get; init; }

    /// <summary>
    /// With <see cref="Resume"/>: continue although the settings differ from the recorded ones, where every difference is
    /// safe to continue with (see <see cref="RunFolder.RequireSameOptions"/>); each is noted in the first audit line.
    /// </summary>
    public bool Force { get; init; }

    /// <summary>Save a checkpoint every this many steps (and at the end).</summary>
    public int CheckpointEvery { get; init; } = 25;

    /// <summary>Run <see cref="Evaluate"/> every this many steps (and after the last step); 0 never.</summary>
    public int EvaluateEvery { get; init; }

    /// <summary>
    /// Called with the step count and the current merged model (and its generation graph when one was given) at each
    /// evaluation; returns the figures to log (for example ASR and utility).
    /// </summary>
    public Func<long, Model, Model?, System.Text.Json.Nodes.JsonObject>? Evaluate { get; init; }

    /// <summary>Seed of the LoRA initialization.</summary>
    public int Seed { get; init; }

    /// <summary>Execution provider and threads.</summary>
    public SessionConfig Runtime { get; init; } = new();

    /// <summary>How backward graphs are built (for example OneHot embedding gradients on DirectML).</summary>
    public BackwardOptions Backward { get; init; } = new();

    /// <summary>Recompute each transformer block's activations in the backward pass (see <see cref="TrainingOptions.CheckpointActivations"/>).</summary>
    public bool CheckpointActivations { get; init; }
    /// <summary>The element type the frozen weights are held in (see <see cref="TrainingOptions.BaseDtype"/>).</summary>
    public Onnx.ElementType BaseDtype { get; init; } = Onnx.ElementType.Float;

    /// <summary>The most labelled rows one micro-batch can hold (rows x tokens), when known: see <see cref="TrainingOptions.ExpectedResponseRows"/>.</summary>
    public long? ExpectedResponseRows { get; init; }

    /// <summary>The resolved options to record in <c>options.json</c> (the CLI passes what the user asked for).</summary>
    public System.Text.Json.Nodes.JsonObject? Record { get; init; }

    /// <summary>Throws <see cref="UserInputException"/> naming the option when a value is out of range.</summary>
    public void Validate()
    {
        Safety.Validate();
        Optimizer.Validate();
        Lora?.Validate();
        if (Lora is not null && !Selection.IsDefault) throw new OptionException("trainable", "{trainable}, {frozen} and {keep-untied} choose weights for full fine-tuning; add {full}.");
        Selection.Validate();
        if (Plan.Steps < 1) throw new UserInputException($"the run has {Plan.Steps} steps; it needs at least one (more data, or more epochs).");
        if (WarmupSteps < 0) throw new OptionException("warmup", $"{{warmup}} must be 0 or more, not {WarmupSteps}.");
        if (CheckpointEvery < 1) throw new UserInputException($"the checkpoint interval must be at least 1, not {CheckpointEvery}.");
        if (EvaluateEvery < 0) throw new UserInputException($"the evaluation interval must be 0 or more, not {EvaluateEvery}.");
        if (ClipNorm is { } c && !(c > 0)) throw new OptionException("clip-norm", $"{{clip-norm}} must be positive, not {c}.");
        if (Resume && RunDirectory is null) throw new UserInputException("resuming needs a run folder.");
        if (Resume && Overwrite) throw new OptionException("resume", "{resume} and {overwrite} exclude each other.");
        if (Force && !Resume) throw new OptionException("force", "{force} goes with {resume}: it allows safe differences from the recorded settings.");
        if (Safety.Risk is not RiskSpec.None && RiskSource is null) throw new OptionException("risk", $"{{risk}} {Safety.Risk} needs a risk source.");
    }
}

/// <summary>One optimizer step, as logged.</summary>
/// <param name="Step">The step number, from 1.</param>
/// <param name="TotalSteps">Steps in the run.</param>
/// <param name="LearningRate">The learning rate used.</param>
/// <param name="Loss">The objective's value (the weighted sum), before the update.</param>
/// <param name="Sft">The mean response-token cross-entropy.</param>
/// <param name="Kl">The mean token KL to the reference (KL penalty), or the mean constrained term; null when not computed.</param>
/// <param name="Risk">The batch risk in [0, 1] (the mean of the example risks under per-example weighting); null without a risk source.</param>
/// <param name="Beta">The batch's beta (the mean of the example betas under per-example weighting).</param>
/// <param name="ExampleRisks">Each example's risk, when there is a risk source.</param>
/// <param name="ExampleBetas">Each example's beta, under per-example weighting.</param>
/// <param name="Examples">The ids of the examples in the step.</param>
/// <param name="Tokens">Tokens in the step's batches (batch x sequence, padding included).</param>
/// <param name="ResponseTokens">Response tokens the loss counted.</param>
/// <param name="Milliseconds">Wall-clock time of the step.</param>
/// <param name="RiskFailures">Examples the risk source failed on in this step (fail closed: risk 1).</param>
/// <param name="GradientNorm">The global gradient norm before clipping, when clipping is on.</param>
public sealed record StepLog(long Step, long TotalSteps, double LearningRate, double Loss, double Sft, double? Kl, double? Risk, double Beta,
    double[]? ExampleRisks, double[]? ExampleBetas, IReadOnlyList<string> Examples, long Tokens, long ResponseTokens, double Milliseconds,
    int RiskFailures, double? GradientNorm);

/// <summary>What <see cref="FineTuner.Run"/> did.</summary>
/// <param name="Model">The merged output model (the input graph with the trained weights).</param>
/// <param name="GenerationModel">The trained weights in the key/value-cache graph, when one was given.</param>
/// <param name="Steps">Steps taken in total.</param>
/// <param name="FirstStep">The first step of this run (non-zero when resumed).</param>
/// <param name="Seconds">Wall-clock seconds of this run's steps.</param>
/// <param name="MsPerStep">The median step time.</param>
/// <param name="TokensPerSecond">Tokens (padding included) per second over this run's steps.</param>
/// <param name="Log">This run's steps.</param>
/// <param name="Evaluations">The evaluations, by step.</param>
/// <param name="Cancelled">True when the run stopped early (after a complete step, with a checkpoint).</param>
/// <param name="RiskFailures">Examples the risk source failed on (each counted once).</param>
public sealed record FineTuneResult(Model Model, Model? GenerationModel, long Steps, long FirstStep, double Seconds, double MsPerStep,
    double TokensPerSecond, IReadOnlyList<StepLog> Log, IReadOnlyList<(long Step, System.Text.Json.Nodes.JsonObject Figures)> Evaluations,
    bool Cancelled, int RiskFailures);
