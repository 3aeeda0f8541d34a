using System.ComponentModel;
using Spectre.Console;
using SafeTune.Cli.Infrastructure;
using Spectre.Console.Cli;

namespace SafeTune.Cli.Commands.Fit;

/// <summary>Arguments of <c>safetune fit</c>.</summary>
public sealed class FitSettings : ModelBatchSettings
{


    [CommandOption("--steps <N>")]
    [Description("Optimizer steps (default 10).")]
    public int Steps { get; init; } = 10;

    [CommandOption("--optimizer <NAME>")]
    [Description("adamw (default) or sgd (momentum 0.9).")]
    public string Optimizer { get; init; } = "adamw";

    [CommandOption("--lr <X>")]
    [Description("Learning rate (the peak of the schedule); must be positive. Default 1e-3.")]
    public double LearningRate { get; init; } = 1e-3;

    [CommandOption("--weight-decay <W>")]
    [Description("Weight decay (decoupled for AdamW, L2 for SGD). Default 0.01.")]
    public double WeightDecay { get; init; } = 0.01;

    /// <summary>SGD momentum.</summary>
    [CommandOption("--momentum <M>")]
    [Description("SGD momentum. Default 0.9.")]
    public double Momentum { get; init; } = 0.9;

    [CommandOption("--lora <R>")]
    [Description("Train LoRA adapters of rank R on the attention and MLP projections instead of every weight.")]
    public int? LoraRank { get; init; }

    /// <summary>Fixed beta of the KL-regularized objective; null trains plain cross-entropy.</summary>
    [CommandOption("--kl <BETA>")]
    [Description("Train (1 - BETA) * SFT + BETA * KL(reference || model) on the labelled positions, the starting model as the reference (a reference pass every step, sharing the frozen weights): the regularized step of 'train', on one batch. BETA lies between 0 and 1.")]
    public double? KlBeta { get; init; }

    /// <summary>Activation checkpointing.</summary>
    [CommandOption("--checkpoint-activations")]
    [Description("Keep only the residual stream between transformer blocks and recompute each block in the backward pass: activation memory stops growing with depth, for about one more forward pass per step.")]
    public bool CheckpointActivations { get; init; }

    /// <summary>The element type of the frozen weights.</summary>
    [CommandOption("--base-dtype <TYPE>")]
    [Description("Hold the frozen weights in fp32 (default), fp16 or bf16: 16 bits halve their memory; ops still compute in fp32 on copies cast where read. Trainable weights, gradients and optimizer state stay fp32. Meant for GPUs; on the CPU it saves memory for some time per step.")]
    public string? BaseDtype { get; init; }

    [CommandOption("--lora-alpha <A>")]
    [Description("LoRA scale numerator: the update is (alpha / r) * B A. Default 16.")]
    public double LoraAlpha { get; init; } = 16;

    [CommandOption("--lora-pattern <REGEX>")]
    [Description("Which MatMuls get adapters: a regex over node and weight names (default: attention and MLP projections).")]
    public string? LoraPattern { get; init; }

    /// <summary>Also train the float initializers matching this regex.</summary>
    [CommandOption("--trainable <REGEX>")]
    [Description("Also train the float initializers whose names match REGEX, buffers included (see 'inspect' for what is a parameter and what a buffer). Full fine-tuning only.")]
    public string? Trainable { get; init; }

    /// <summary>Freeze the initializers matching this regex.</summary>
    [CommandOption("--frozen <REGEX>")]
    [Description("Freeze the initializers whose names match REGEX; it wins over --trainable. Full fine-tuning only.")]
    public string? Frozen { get; init; }

    /// <summary>Train copies of tied weights apart.</summary>
    [CommandOption("--keep-untied")]
    [Description("Train exact copies of other weights (a tied head stored as a transposed copy of the embedding) as separate tensors instead of re-tying them.")]
    public bool KeepUntied { get; init; }

    /// <summary>Clipping.</summary>
    [CommandOption("--clip-norm <C>")]
    [Description("Clip the global gradient norm to C before each step.")]
    public double? ClipNorm { get; init; }

    [CommandOption("--schedule <NAME>")]
    [Description("constant (default) or cosine (linear warm-up, then cosine decay to 0 at the last step).")]
    public string Schedule { get; init; } = "constant";

    /// <summary>Warm-up steps.</summary>
    [CommandOption("--warmup <K>")]
    [Description("Warm-up steps of the cosine schedule. Default 0.")]
    public int Warmup { get; init; }

    /// <summary>Checkpoint folder.</summary>
    [CommandOption("--checkpoint-dir <DIR>")]
    [Description("Save a checkpoint after every step here (atomic writes).")]
    public string? CheckpointDir { get; init; }

    [CommandOption("--resume")]
    [Description("Continue from the checkpoint in --checkpoint-dir.")]
    public bool Resume { get; init; }

    [CommandOption("--export <OUT.onnx>")]
    [Description("Write the trained model (LoRA merged: the same graph as the input) here.")]
    public string? Export { get; init; }


    /// <summary>JSON output.</summary>
    [CommandOption("--json")]
    [Description("Print {\"losses\", \"ms_per_step\", \"tokens_per_step\", \"peak_rss_mb\"} on stdout.")]
    public bool Json { get; init; }

    /// <inheritdoc/>
    public override ValidationResult Validate()
    {
        if (base.Validate() is { Successful: false } invalid) return invalid;
        if (BaseDtype is not null && Runtime.Training.TrainingOptions.ParseBaseDtype(BaseDtype) is null)
            return ValidationResult.Error($"--base-dtype must be {Runtime.Training.TrainingOptions.BaseDtypeNames}, not '{BaseDtype}'.");
        if (Steps < 1) return ValidationResult.Error($"--steps must be at least 1, not {Steps}.");
        if (!(LearningRate > 0) || double.IsInfinity(LearningRate)) return ValidationResult.Error($"--lr must be positive, not {LearningRate}.");
        if (WeightDecay < 0) return ValidationResult.Error($"--weight-decay must be 0 or more, not {WeightDecay}.");
        if (Optimizer is not ("adamw" or "sgd")) return ValidationResult.Error($"--optimizer must be adamw or sgd, not '{Optimizer}'.");
        if (Schedule is not ("constant" or "cosine")) return ValidationResult.Error($"--schedule must be constant or cosine, not '{Schedule}'.");
        if (LoraRank is < 1) return ValidationResult.Error($"--lora must be at least 1, not {LoraRank}.");
        if (!(LoraAlpha > 0)) return ValidationResult.Error($"--lora-alpha must be positive, not {LoraAlpha}.");
        if (KlBeta is { } kl && !(kl >= 0 && kl <= 1)) return ValidationResult.Error($"--kl must be a beta between 0 and 1, not {kl}.");
        if (ClipNorm is { } c && !(c > 0)) return ValidationResult.Error($"--clip-norm must be positive, not {c}.");
        if (LoraRank is not null && (Trainable is not null || Frozen is not null || KeepUntied))
            return ValidationResult.Error("--trainable, --frozen and --keep-untied choose weights for full fine-tuning; they do not combine with --lora.");
        if (Resume && CheckpointDir is null) return ValidationResult.Error("--resume needs --checkpoint-dir.");
        if (Warmup < 0 || Warmup >= Steps && Schedule == "cosine") return ValidationResult.Error($"--warmup must lie in [0, steps), not {Warmup}.");
        return ValidationResult.Success();
    }
}
