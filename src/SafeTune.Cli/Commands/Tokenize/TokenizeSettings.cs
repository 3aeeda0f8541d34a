using System.ComponentModel;
using Spectre.Console;
using Spectre.Console.Cli;

namespace SafeTune.Cli.Commands.Tokenize;

/// <summary>Arguments of <c>safetune tokenize</c>.</summary>
public sealed class TokenizeSettings : CommandSettings
{
    /// <summary>The model folder (or tokenizer file).</summary>
    [CommandOption("--tokenizer <DIR>")]
    [Description("A Hub model folder (tokenizer.json and/or tokenizer_config.json with its chat template), or a tokenizer file. A folder with only tokenizer_config.json renders conversations without ids.")]
    public string Tokenizer { get; init; } = "";

    /// <summary>One text to tokenize.</summary>
    [CommandOption("--text <TEXT>")]
    [Description("Tokenize this text and print its ids and tokens.")]
    public string? Text { get; init; }

    /// <summary>Input rows.</summary>
    [CommandOption("--input <IN.jsonl>")]
    [Description("Rows of {\"text\"} or {\"messages\", \"add_generation_prompt\"}; needs --out.")]
    public string? Input { get; init; }

    /// <summary>Output rows.</summary>
    [CommandOption("--out <OUT.jsonl>")]
    [Description("One row per input row, in order: {\"ids\", \"tokens\"}, plus \"text\" (the rendered prompt) for messages.")]
    public string? Out { get; init; }

    /// <summary>Encode without special tokens.</summary>
    [CommandOption("--no-special")]
    [Description("Encode text as add_special_tokens=False does (the default is the tokenizer's own: its post-processor's bos/eos). Conversations never get extra special tokens: the template writes them.")]
    public bool NoSpecial { get; init; }

    /// <summary>Print JSON.</summary>
    [CommandOption("--json")]
    [Description("Print one JSON object: {\"ids\", \"tokens\"} for --text; {\"rows\", \"tokens\", \"out\"} for --input.")]
    public bool Json { get; init; }

    /// <inheritdoc/>
    public override ValidationResult Validate()
    {
        if (Tokenizer.Length == 0) return ValidationResult.Error("--tokenizer is required.");
        if ((Text is null) == (Input is null)) return ValidationResult.Error("give exactly one of --text and --input.");
        if (Input is not null && string.IsNullOrWhiteSpace(Out)) return ValidationResult.Error("--input needs --out.");
        if (Text is not null && Out is not null) return ValidationResult.Error("--out goes with --input, not --text.");
        return ValidationResult.Success();
    }
}
