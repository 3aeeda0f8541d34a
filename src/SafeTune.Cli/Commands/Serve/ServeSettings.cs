using System.ComponentModel;
using System.Net;
using Spectre.Console;
using Spectre.Console.Cli;

namespace SafeTune.Cli.Commands.Serve;

/// <summary>Arguments of <c>safetune serve</c>.</summary>
public sealed class ServeSettings : CommandSettings
{
    [CommandOption("--model <M.onnx>")]
    [Description("An ONNX chat model to serve (a key/value-cache graph generates fastest); needs --tokenizer. Or an ONNX Runtime GenAI or Optimum model folder, whose own tokenizer is the default. demo (or builtin:demo) is the same as --demo.")]
    public string? Model { get; init; }

    [CommandOption("--tokenizer <T>")]
    [Description("tokenizer.json, vocab.txt, a vocab.json + merges.txt folder, tokenizer.model, or a tiktoken name.")]
    public string? Tokenizer { get; init; }

    /// <summary>The chat template.</summary>
    [CommandOption("--template <NAME>")]
    [Description("chatml, llama3, phi3 or plain (default: recognised from tokenizer_config.json beside the tokenizer, else plain).")]
    public string? Template { get; init; }

    /// <summary>Serve the demo model.</summary>
    [CommandOption("--demo")]
    [Description("Serve the built-in demo model (trained on first use, about 80 s on 2 cores, then cached).")]
    public bool Demo { get; init; }

    /// <summary>The demo cache.</summary>
    [CommandOption("--cache <DIR>")]
    [Description("The cache root the demo model is kept under, as for safetune demo --cache (default: $SAFETUNE_CACHE, else ~/.cache/safetune): a model the demo built is served as it is.")]
    public string? Cache { get; init; }

    /// <summary>Serve a judge.</summary>
    [CommandOption("--judge <SPEC>")]
    [Description("Serve a Safety Critic instead of a model: each chat answer is #thescore: N for the user/assistant pair (or SafeTune rubric message) in the request. SPEC as in critic score, e.g. keyword.")]
    public string? Judge { get; init; }

    /// <summary>The judge batch limit.</summary>
    [CommandOption("--max-batch <N>")]
    [Description("With --judge: the most concurrent requests scored in one judge call (default 64; 1 scores each item alone).")]
    public int MaxBatch { get; init; } = 64;

    /// <summary>The model name served.</summary>
    [CommandOption("--model-id <NAME>")]
    [Description("The model name reported by /v1/models (default: the model file's name, safetune-demo, or the judge spec).")]
    public string? ModelId { get; init; }

    /// <summary>The address.</summary>
    [CommandOption("--host <ADDRESS>")]
    [Description("The IP address to bind (default 127.0.0.1: only this machine can connect).")]
    public string Host { get; init; } = "127.0.0.1";

    [CommandOption("--port <N>")]
    [Description("The TCP port (default 8000; 0 picks a free one, printed at start).")]
    public int Port { get; init; } = 8000;

    /// <summary>Default max tokens.</summary>
    [CommandOption("--max-tokens <N>")]
    [Description("Tokens generated when a request gives no max_tokens (default 256; 64 for the demo).")]
    public int? MaxTokens { get; init; }

    /// <summary>Prompt limit.</summary>
    [CommandOption("--max-prompt-tokens <N>")]
    [Description("The most tokens a prompt may have; longer requests get HTTP 400 (default: the model's context length from its metadata, " +
        "position table or tokenizer_config.json, else 2048).")]
    public int? MaxPromptTokens { get; init; }

    /// <summary>The execution provider.</summary>
    [CommandOption("--provider <NAME>")]
    [Description("cpu (default), cuda or directml, for --model and --demo.")]
    public string? Provider { get; init; }

    /// <summary>JSON output.</summary>
    [CommandOption("--json")]
    [Description("Print {\"base_url\", \"port\", \"model\", \"template\"} as one line (no template for a judge) on stdout once listening.")]
    public bool Json { get; init; }

    /// <summary>True for <c>--demo</c>, and for <c>--model demo</c> (or <c>builtin:demo</c>).</summary>
    public bool ServesDemo => Demo || Infrastructure.ModelSource.IsNamed(Model) && Model!.EndsWith("demo", StringComparison.OrdinalIgnoreCase);

    /// <inheritdoc/>
    public override ValidationResult Validate()
    {
        bool demo = ServesDemo;
        int kinds = (Model is null || demo ? 0 : 1) + (demo ? 1 : 0) + (Judge is null ? 0 : 1);
        if (kinds != 1) return ValidationResult.Error("give exactly one of --model M.onnx --tokenizer T, --demo, or --judge SPEC.");
        if (Model is not null && !demo && Tokenizer is null && Models.Generation.DecoderFolder.TokenizerOf(Model) is null) return ValidationResult.Error("--model needs --tokenizer.");
        if (Port is < 0 or > 65535) return ValidationResult.Error($"--port must be from 0 to 65535, not {Port}.");
        if (!IPAddress.TryParse(Host, out _)) return ValidationResult.Error($"--host must be an IP address such as 127.0.0.1, not '{Host}'.");
        if (MaxBatch < 1) return ValidationResult.Error($"--max-batch must be at least 1, not {MaxBatch}.");
        if (MaxPromptTokens is < 1) return ValidationResult.Error($"--max-prompt-tokens must be at least 1, not {MaxPromptTokens}.");
        if (MaxTokens is < 1) return ValidationResult.Error($"--max-tokens must be at least 1, not {MaxTokens}.");
        return ValidationResult.Success();
    }
}
