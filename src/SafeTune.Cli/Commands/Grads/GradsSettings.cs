using System.ComponentModel;
using Spectre.Console;
using SafeTune.Cli.Infrastructure;
using Spectre.Console.Cli;

namespace SafeTune.Cli.Commands.Grads;

/// <summary>Arguments of <c>safetune grads</c>.</summary>
public sealed class GradsSettings : ModelBatchSettings
{


    /// <summary>Where to write the gradients.</summary>
    [CommandOption("--out <GRADS.safetensors>")]
    [Description("Output file: d loss / d parameter for every float initializer, under the initializer's name and in its own type (F32 for float32 weights).")]
    public string Out { get; init; } = "";


    /// <summary>How embedding gradients accumulate.</summary>
    [CommandOption("--embedding-grad <KIND>")]
    [Description("scatter (ScatterND add, default) or onehot (OneHot + MatMul, for DirectML).")]
    public string EmbeddingGrad { get; init; } = "scatter";

    /// <summary>Print one JSON object.</summary>
    [CommandOption("--json")]
    [Description("Print {\"loss\", \"parameters\", \"gradients\", \"ms\"} on stdout.")]
    public bool Json { get; init; }

    /// <inheritdoc/>
    public override ValidationResult Validate()
    {
        if (base.Validate() is { Successful: false } invalid) return invalid;
        if (Out.Length == 0) return ValidationResult.Error("--out is required.");
        if (EmbeddingGrad is not ("scatter" or "onehot")) return ValidationResult.Error($"--embedding-grad must be scatter or onehot, not '{EmbeddingGrad}'.");
        return ValidationResult.Success();
    }
}
