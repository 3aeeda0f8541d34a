using System.ComponentModel;
using Spectre.Console.Cli;

namespace SafeTune.Cli.Commands.Probe;

/// <summary>The options every command that applies a trained probe shares: the probe, and the model and tokenizer it reads.</summary>
public abstract class ProbeModelSettings : CommandSettings
{
    [CommandOption("--probe <PROBE.json>")]
    [Description("A probe written by probe train.")]
    public string Probe { get; init; } = "";

    /// <summary>Model override.</summary>
    [CommandOption("--model <M.onnx>")]
    [Description("The model (default: the one recorded in the probe; its SHA-256 must match); demo or builtin:minilm name the models SafeTune provides.")]
    public string? Model { get; init; }

    /// <summary>The model file <see cref="Model"/> names (a named model's file), or null for the probe's own.</summary>
    public string? ModelPath => Infrastructure.ModelSource.Named(Model)?.ModelPath ?? Model;

    /// <summary>Tokenizer override.</summary>
    [CommandOption("--tokenizer <T>")]
    [Description("The tokenizer (default: the one recorded in the probe).")]
    public string? Tokenizer { get; init; }
}
