using System.ComponentModel;
using Spectre.Console;
using Spectre.Console.Cli;

namespace SafeTune.Cli.Commands.Chat;

/// <summary>Arguments of <c>safetune chat</c>.</summary>
public sealed class ChatSettings : CommandSettings
{
    [CommandOption("--model <M.onnx>")]
    [Description("An ONNX decoder, or a Hub checkpoint folder (built with a key/value cache).")]
    public string Model { get; init; } = "";

    /// <summary>The model folder.</summary>
    [CommandOption("--tokenizer <DIR>")]
    [Description("The Hub model folder with its tokenizer and its own chat template.")]
    public string Tokenizer { get; init; } = "";

    /// <summary>A system message.</summary>
    [CommandOption("--system <TEXT>")]
    [Description("A system message that opens the conversation.")]
    public string? System { get; init; }

    /// <summary>Most new tokens per reply.</summary>
    [CommandOption("--max-new-tokens <N>")]
    [Description("The most tokens per reply (default 256).")]
    public int MaxNewTokens { get; init; } = 256;

    [CommandOption("--temperature <T>")]
    [Description("Softmax temperature; 0 (default) is greedy.")]
    public float Temperature { get; init; }

    /// <summary>Nucleus sampling.</summary>
    [CommandOption("--top-p <P>")]
    [Description("Nucleus sampling threshold (default 1).")]
    public float TopP { get; init; } = 1f;

    [CommandOption("--seed <S>")]
    [Description("Random seed for sampling (default 0).")]
    public int Seed { get; init; }

    /// <inheritdoc/>
    public override ValidationResult Validate()
    {
        if (Model.Length == 0) return ValidationResult.Error("--model is required.");
        if (Tokenizer.Length == 0) return ValidationResult.Error("--tokenizer is required.");
        if (MaxNewTokens < 1) return ValidationResult.Error($"--max-new-tokens must be at least 1, not {MaxNewTokens}.");
        if (!(Temperature >= 0) || float.IsInfinity(Temperature)) return ValidationResult.Error($"--temperature must be 0 or more, not {Temperature}.");
        if (!(TopP > 0 && TopP <= 1)) return ValidationResult.Error($"--top-p must be in (0, 1], not {TopP}.");
        return ValidationResult.Success();
    }
}
