using System.ComponentModel;
using Spectre.Console.Cli;

namespace SafeTune.Cli.Commands.Inspect;

/// <summary>Arguments of <c>safetune inspect</c>.</summary>
public sealed class InspectSettings : CommandSettings
{
    /// <summary>The model file, or builtin:NAME.</summary>
    [CommandArgument(0, "<MODEL>")]
    [Description("An ONNX model file (external data is read from its folder), or builtin:tiny-llama.")]
    public string Model { get; init; } = "";

    /// <summary>Print one JSON object instead of tables.</summary>
    [CommandOption("--json")]
    [Description("Print one JSON object on stdout.")]
    public bool Json { get; init; }
}
