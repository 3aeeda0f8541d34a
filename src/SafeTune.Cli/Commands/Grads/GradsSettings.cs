using System.ComponentModel;
using Spectre.Console;
using Spectre.Console.Cli;

namespace SafeTune.Cli.Commands.Grads;

/// <summary>Arguments of <c>safetune grads</c>.</summary>
public sealed class GradsSettings : CommandSettings
{
    /// <summary>The model file, or builtin:NAME.</summary>
    [CommandArgument(0, "<MODEL>")]
    [Description("An ONNX language model with a logits output [batch, sequence, vocab], or builtin:tiny-llama.")]
    public string Model { get; init; } = "";

    /// <summary>The batch file.</summary>
    [CommandOption("--batch <BATCH.json>")]
    [Description("JSON with int64 [B,T] \"input_ids\" and \"labels\" (-100 = ignored; already shifted), optional \"attention_mask\".")]
    public string Batch { get; init; } = "";

    /// <summary>Where to write the gradients.</summary>
    [CommandOption("--out <GRADS.safetensors>")]
    [Description("Output file: d loss / d parameter for every float initializer, under the initializer's name and in its own type (F32 for float32 weights).")]
    public string Out { get; init; } = "";

    /// <summary>The execution provider.</summary>
    [CommandOption("--provider <NAME>")]
    [Description("cpu (default), cuda or directml.")]
    public string Provider { get; init; } = "cpu";

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
        if (Batch.Length == 0) return ValidationResult.Error("--batch is required.");
        if (Out.Length == 0) return ValidationResult.Error("--out is required.");
        if (EmbeddingGrad is not ("scatter" or "onehot")) return ValidationResult.Error($"--embedding-grad must be scatter or onehot, not '{EmbeddingGrad}'.");
        return ValidationResult.Success();
    }
}
