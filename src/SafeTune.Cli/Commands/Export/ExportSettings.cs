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
    [Description("Where to write the ONNX model (external data is used above 2 GB). Optional with --genai-out.")]
    public string Out { get; init; } = "";

    /// <summary>The ONNX Runtime GenAI folder.</summary>
    [CommandOption("--genai-out <DIR>")]
    [Description("Also write a folder that ONNX Runtime GenAI loads as it is: genai_config.json, the key/value-cache decoder as model.onnx, tokenizer.json and tokenizer_config.json with the chat template. Needs tokenizer.json in the checkpoint folder.")]
    public string? GenAiOut { get; init; }

    /// <summary>Also output the hidden states.</summary>
    [CommandOption("--hidden-states")]
    [Description("Also output each block's hidden state (the residual stream) as a graph output.")]
    public bool HiddenStates { get; init; }

    /// <summary>JSON output.</summary>
    [CommandOption("--json")]
    [Description("Print {\"out\", \"genaiOut\", \"modelType\", \"parameters\", \"layers\"} on stdout.")]
    public bool Json { get; init; }

    /// <inheritdoc/>
    public override ValidationResult Validate() =>
        FromHf.Length == 0 ? ValidationResult.Error("--from-hf is required.")
        : Out.Length == 0 && GenAiOut is null ? ValidationResult.Error("--out or --genai-out is required.")
        : GenAiOut is { Length: 0 } ? ValidationResult.Error("--genai-out needs a folder.")
        : ValidationResult.Success();
}
