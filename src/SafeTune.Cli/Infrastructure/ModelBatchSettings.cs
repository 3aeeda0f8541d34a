using System.ComponentModel;
using Spectre.Console;
using Spectre.Console.Cli;

namespace SafeTune.Cli.Infrastructure;

/// <summary>The arguments every command that runs a language model on a token batch shares: model, batch, provider.</summary>
public abstract class ModelBatchSettings : CommandSettings
{
    /// <summary>The model file, or builtin:NAME.</summary>
    [CommandArgument(0, "<MODEL>")]
    [Description("An ONNX language model with a logits output [[batch, sequence, vocab]], or builtin:tiny-llama.")]
    public string Model { get; init; } = "";

    /// <summary>The batch file.</summary>
    [CommandOption("--batch <BATCH.json>")]
    [Description("JSON with int64 [[B,T]] \"input_ids\" and \"labels\" (-100 = ignored; already shifted), optional \"attention_mask\".")]
    public string Batch { get; init; } = "";

    /// <summary>The execution provider.</summary>
    [CommandOption("--provider <NAME>")]
    [Description("cpu (default), cuda or directml.")]
    public string Provider { get; init; } = "cpu";

    /// <inheritdoc/>
    public override ValidationResult Validate() =>
        Batch.Length == 0 ? ValidationResult.Error("--batch is required.") : ValidationResult.Success();
}
