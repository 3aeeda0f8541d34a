using System.ComponentModel;
using Spectre.Console;
using Spectre.Console.Cli;

namespace SafeTune.Cli.Commands.Export;

/// <summary>Arguments of <c>safetune export</c>.</summary>
public sealed class ExportSettings : CommandSettings
{
    /// <summary>The checkpoint folder.</summary>
    [CommandOption("--from-hf <DIR>")]
    [Description("A Hugging Face checkpoint folder: config.json and *.safetensors (single file or shards with an index).")]
    public string FromHf { get; init; } = "";

    /// <summary>The output model.</summary>
    [CommandOption("--out <MODEL.onnx>")]
    [Description("Where to write the ONNX model (external data is used above 2 GB).")]
    public string Out { get; init; } = "";

    /// <summary>Also output the hidden states.</summary>
    [CommandOption("--hidden-states")]
    [Description("Also output each block's hidden state (the residual stream) as a graph output.")]
    public bool HiddenStates { get; init; }

    /// <summary>JSON output.</summary>
    [CommandOption("--json")]
    [Description("Print {\"out\", \"modelType\", \"parameters\", \"layers\"} on stdout.")]
    public bool Json { get; init; }

    /// <inheritdoc/>
    public override ValidationResult Validate() =>
        FromHf.Length == 0 ? ValidationResult.Error("--from-hf is required.")
        : Out.Length == 0 ? ValidationResult.Error("--out is required.")
        : ValidationResult.Success();
}
