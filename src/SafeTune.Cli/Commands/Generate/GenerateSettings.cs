using System.ComponentModel;
using Spectre.Console;
using Spectre.Console.Cli;

namespace SafeTune.Cli.Commands.Generate;

/// <summary>Arguments of <c>safetune generate</c>.</summary>
public sealed class GenerateSettings : CommandSettings
{
    /// <summary>The ONNX model.</summary>
    [CommandOption("--model <M.onnx>")]
    [Description("An ONNX decoder (input_ids -> logits), for example from export --from-hf, whose key/value cache is used when it has one; " +
        "an ONNX Runtime GenAI folder (genai_config.json) or Optimum export folder (decoder_model_merged.onnx or model.onnx with past_key_values); " +
        "or a Hub checkpoint folder (config.json + safetensors), built with a key/value cache.")]
    public string Model { get; init; } = "";

    /// <summary>The model folder.</summary>
    [CommandOption("--tokenizer <DIR>")]
    [Description("The Hub model folder with tokenizer.json (and tokenizer_config.json, generation_config.json). Default for a GenAI or Optimum --model folder: its own.")]
    public string Tokenizer { get; init; } = "";

    /// <summary><see cref="Tokenizer"/>, or the tokenizer folder of a GenAI or Optimum <see cref="Model"/> folder.</summary>
    public string TokenizerOrDefault => Tokenizer.Length > 0 ? Tokenizer : Models.Generation.DecoderFolder.TokenizerOf(Model) ?? "";

    [CommandOption("--prompt <TEXT>")]
    [Description("Raw text that a base model continues (with bos as tokenizer_config.json says); for a model with a chat template, one user message.")]
    public string? Prompt { get; init; }

    /// <summary>A conversation file.</summary>
    [CommandOption("--messages <FILE.json>")]
    [Description("A JSON array of {\"role\", \"content\"} messages (or an object with \"messages\"), rendered by the model's own chat template.")]
    public string? Messages { get; init; }

    /// <summary>Most new tokens.</summary>
    [CommandOption("--max-new-tokens <N>")]
    [Description("The most tokens to generate (default 128).")]
    public int MaxNewTokens { get; init; } = 128;

    [CommandOption("--temperature <T>")]
    [Description("Softmax temperature; 0 (default) is greedy.")]
    public float Temperature { get; init; }

    /// <summary>Nucleus sampling.</summary>
    [CommandOption("--top-p <P>")]
    [Description("Sample from the smallest set of tokens whose probability reaches P (default 1).")]
    public float TopP { get; init; } = 1f;

    [CommandOption("--seed <S>")]
    [Description("Random seed for sampling (default 0).")]
    public int Seed { get; init; }

    /// <summary>Print JSON.</summary>
    [CommandOption("--json")]
    [Description("Print one JSON object {\"text\", \"ids\", \"prompt_tokens\", \"tokens_per_second\", \"finish_reason\", \"kv_cache\"} instead of streaming the text.")]
    public bool Json { get; init; }

    /// <inheritdoc/>
    public override ValidationResult Validate()
    {
        if (Model.Length == 0) return ValidationResult.Error("--model is required.");
        if (TokenizerOrDefault.Length == 0) return ValidationResult.Error("--tokenizer is required (a GenAI or Optimum --model folder with tokenizer files needs none).");
        if ((Prompt is null) == (Messages is null)) return ValidationResult.Error("give exactly one of --prompt and --messages.");
        if (MaxNewTokens < 1) return ValidationResult.Error($"--max-new-tokens must be at least 1, not {MaxNewTokens}.");
        if (!(Temperature >= 0) || float.IsInfinity(Temperature)) return ValidationResult.Error($"--temperature must be 0 or more, not {Temperature}.");
        if (!(TopP > 0 && TopP <= 1)) return ValidationResult.Error($"--top-p must be in (0, 1], not {TopP}.");
        return ValidationResult.Success();
    }
}
