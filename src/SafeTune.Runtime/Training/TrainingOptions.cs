using SafeTune.Autodiff;
using SafeTune.Onnx;

namespace SafeTune.Runtime.Training;

/// <summary>The optimizer algorithm.</summary>
public enum OptimizerKind
{
    /// <summary>AdamW with decoupled weight decay (PyTorch semantics).</summary>
    AdamW,
    /// <summary>SGD with momentum (PyTorch semantics; weight decay is added to the gradient).</summary>
    Sgd,
}

/// <summary>Optimizer hyper-parameters.</summary>
public sealed record OptimizerConfig
{
    /// <summary>The algorithm.</summary>
    public OptimizerKind Kind { get; init; } = OptimizerKind.AdamW;
    /// <summary>Learning rate (or the peak of a schedule); must be positive.</summary>
    public double LearningRate { get; init; } = 1e-3;
    /// <summary>AdamW beta1.</summary>
    public double Beta1 { get; init; } = 0.9;
    /// <summary>AdamW beta2.</summary>
    public double Beta2 { get; init; } = 0.999;
    /// <summary>AdamW epsilon.</summary>
    public double Epsilon { get; init; } = 1e-8;
    /// <summary>Weight decay: decoupled for AdamW, L2 on the gradient for SGD.</summary>
    public double WeightDecay { get; init; } = 0.01;
    /// <summary>SGD momentum.</summary>
    public double Momentum { get; init; } = 0.9;
    /// <summary>
    /// When set, a proximal pull <c>g += rho * (w - w_ref)</c> toward the starting weights is added to every gradient
    /// (a Lisa-style penalty <c>rho/2 * |w - w_ref|^2</c>).
    /// </summary>
    public double? ProximalRho { get; init; }

    /// <summary>Throws <see cref="UserInputException"/> naming the option when a value is out of range.</summary>
    public void Validate()
    {
        // Written so that NaN fails every check: a comparison with NaN is false.
        if (!(LearningRate > 0) || double.IsInfinity(LearningRate)) throw new OptionException("lr", $"{{lr}} (the learning rate) must be positive, not {LearningRate}.");
        if (!(WeightDecay >= 0) || double.IsInfinity(WeightDecay)) throw new OptionException("weight-decay", $"{{weight-decay}} must be 0 or more, not {WeightDecay}.");
        if (!(Beta1 >= 0 && Beta1 < 1) || !(Beta2 >= 0 && Beta2 < 1)) throw new UserInputException($"AdamW betas must lie in [0, 1), not ({Beta1}, {Beta2}).");
        if (!(Epsilon > 0) || double.IsInfinity(Epsilon)) throw new UserInputException($"AdamW epsilon must be positive, not {Epsilon}.");
        if (!(Momentum >= 0 && Momentum < 1)) throw new UserInputException($"SGD momentum must lie in [0, 1), not {Momentum}.");
        if (ProximalRho is { } rho && (!(rho >= 0) || double.IsInfinity(rho))) throw new UserInputException($"the proximal rho must be 0 or more, not {rho}.");
    }
}

/// <summary>Options of a <see cref="TrainingSession"/>.</summary>
internal sealed record TrainingOptions
{
    /// <summary>Where the graphs run.</summary>
    public SessionConfig Runtime { get; init; } = new();
    /// <summary>
    /// The trainable initializers; null trains the model's parameters as <see cref="Selection"/> chooses them (full
    /// fine-tuning: buffers frozen, tied copies re-tied).
    /// </summary>
    public IReadOnlyList<string>? Trainable { get; init; }
    /// <summary>How the parameters are chosen when <see cref="Trainable"/> is null.</summary>
    public ParameterSelection Selection { get; init; } = new();
    public OptimizerConfig Optimizer { get; init; } = new();
    /// <summary>How the backward graph is built.</summary>
    public BackwardOptions Backward { get; init; } = new();
    /// <summary>
    /// Compute the head and the loss chunk by chunk as one fused op (<see cref="SafeTune.Autodiff.Losses.FusedResponseHead"/>)
    /// where the head weight is frozen (LoRA): no vocabulary-sized tensor for every position, and the reference pass hands
    /// over hidden rows instead of log-probabilities. Off: the head and the loss are separate ops, as exported.
    /// </summary>
    public bool FusedHead { get; init; } = true;
    /// <summary>
    /// The most response rows one step's loss will see (labelled positions), when the caller knows it. The fused head is
    /// then used only where a vocabulary-sized tensor of that many rows would take <see cref="FusedHeadMinBytes"/> or
    /// more: below that the separate head is a few percent faster (measured on Qwen2.5-0.5B, 2 x 128) and the memory it
    /// saves is small. Null: fuse wherever <see cref="FusedHead"/> allows.
    /// </summary>
    public long? ExpectedResponseRows { get; init; }
    /// <summary>The size of one [rows, V] float tensor from which the fused head is used (256 MiB).</summary>
    public const long FusedHeadMinBytes = 256L << 20;
    /// <summary>
    /// Keep only the residual stream between transformer blocks for the backward pass and recompute each block's
    /// activations there (<see cref="BackwardOptions.Checkpoints"/>): activation memory stops growing with depth, for about
    /// one more forward pass of time per step. The training session's arena is then also handed back after each step.
    /// </summary>
    public bool CheckpointActivations { get; init; }
    /// <summary>
    /// The element type the frozen weights are held in: float32 (the default), float16 or bfloat16. In 16 bits the frozen
    /// weights (every weight but the trainable ones, buffers such as rotary tables excepted) take half the memory; ops still
    /// compute in float32 on float32 copies cast where they are read (<see cref="SafeTune.Onnx.Passes.SixteenBitWeights"/>),
    /// and the backward pass casts again where it needs them (<see cref="BackwardOptions.RecastStoredWeights"/>). Trainable
    /// parameters, gradients and optimizer moments stay float32.
    /// </summary>
    public Onnx.ElementType BaseDtype { get; init; } = Onnx.ElementType.Float;

    /// <summary>The names <see cref="ParseBaseDtype"/> accepts.</summary>
    public const string BaseDtypeNames = "fp32, fp16 or bf16";

    /// <summary>
    /// The element type named by <paramref name="text"/> (fp32, fp16, bf16, or float32, float16, bfloat16); null when it
    /// names none.
    /// </summary>
    public static Onnx.ElementType? ParseBaseDtype(string? text) => text?.Trim().ToLowerInvariant() switch
    {
        "fp32" or "float32" or "float" => Onnx.ElementType.Float,
        "fp16" or "float16" or "half" => Onnx.ElementType.Float16,
        "bf16" or "bfloat16" => Onnx.ElementType.BFloat16,
        _ => null,
    };

    /// <summary>The short name of a base dtype: fp32, fp16 or bf16.</summary>
    public static string BaseDtypeName(Onnx.ElementType type) => type switch
    {
        Onnx.ElementType.Float16 => "fp16",
        Onnx.ElementType.BFloat16 => "bf16",
        _ => "fp32",
    };
    /// <summary>The loss the session minimizes; default: the mean token cross-entropy over the labels that count.</summary>
    public TrainingObjective Objective { get; init; } = TrainingObjective.TokenCrossEntropy;
    /// <summary>
    /// Frozen weights to read from shared buffers (not owned by the session; they must outlive it). Null: the session
    /// shares its frozen weights between its own training and evaluation sessions.
    /// </summary>
    public SharedInitializers? SharedWeights { get; init; }
    /// <summary>
    /// Keep parameters, gradients and optimizer state in memory allocated by ONNX Runtime on the provider's device.
    /// Null (the default) means: on the device for CUDA and DirectML, in host memory for the CPU provider.
    /// </summary>
    public bool? DeviceResidentState { get; init; }
}
