using SafeTune.Models.Demo;
using SafeTune.Models.Generation;
using SafeTune.Onnx;
using SafeTune.Runtime;
using SafeTune.Safety.Critics;

namespace SafeTune.Serving;

/// <summary>What <c>safetune serve</c> serves: exactly one of a model file, the demo model, or a judge.</summary>
public sealed record ServeOptions
{
    /// <summary>An ONNX chat model (with <see cref="Tokenizer"/>).</summary>
    public string? ModelPath { get; init; }

    /// <summary>The model's tokenizer.</summary>
    public string? Tokenizer { get; init; }

    /// <summary>The chat template name; null to recognise it from the tokenizer folder.</summary>
    public string? Template { get; init; }

    /// <summary>Serve the built-in demo model (trained once, then kept in <see cref="DemoModel.CacheFolder"/> of <see cref="CacheRoot"/>).</summary>
    public bool Demo { get; init; }

    /// <summary>The cache root the demo model is kept under (as <c>safetune demo --cache</c>); null for <see cref="DemoModel.CacheRoot"/>.</summary>
    public string? CacheRoot { get; init; }

    /// <summary>A judge spec (<see cref="JudgeSpec"/>): serve its verdicts as <c>#thescore: N</c> answers.</summary>
    public string? Judge { get; init; }

    /// <summary>The most items a served judge scores in one call (concurrent requests are batched up to this).</summary>
    public int JudgeBatch { get; init; } = 64;

    /// <summary>The model name served; null for the default of each kind.</summary>
    public string? ModelId { get; init; }

    /// <summary>Tokens generated when a request sets no limit; null for the default.</summary>
    public int? DefaultMaxTokens { get; init; }

    /// <summary>The most prompt tokens a request may have; null for the model's context length (<see cref="GeneratorBackendOptions.MaxPromptTokens"/>).</summary>
    public int? MaxPromptTokens { get; init; }

    /// <summary>ONNX Runtime settings for model backends.</summary>
    public SessionConfig? Runtime { get; init; }
}

/// <summary>Builds the backend <see cref="ServeOptions"/> describe.</summary>
public static class ChatBackends
{
    /// <summary>Creates the backend; the demo model is trained first if its cache holds none.</summary>
    /// <exception cref="UserInputException">Not exactly one of model, demo and judge is given, or a setting is bad.</exception>
    /// <exception cref="FileNotFoundException">The model or tokenizer is missing.</exception>
    public static IChatBackend Create(ServeOptions options, IProgress<DemoProgress>? demoProgress = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        int kinds = (options.ModelPath is null ? 0 : 1) + (options.Demo ? 1 : 0) + (options.Judge is null ? 0 : 1);
        if (kinds != 1) throw new OptionException("model", "serve exactly one of: {model} M.onnx {tokenizer} T, {demo}, or {judge} SPEC.");
        if (options.Judge is { } spec)
        {
            var judge = JudgeSpec.Parse(spec);
            return new JudgeChatBackend(judge, options.ModelId ?? JudgeSpec.Split(spec).Display, options.JudgeBatch);
        }
        GeneratorBackendOptions settings;
        if (options.Demo)
        {
            var demo = DemoModel.BuildOrLoad(DemoModel.CacheFolder(options.CacheRoot), demoProgress);
            settings = GeneratorBackendOptions.ForDemo(demo);
            settings = settings with { ModelId = options.ModelId ?? settings.ModelId, Runtime = options.Runtime ?? settings.Runtime };
        }
        else
        {
            var tokenizer = options.Tokenizer ?? DecoderFolder.TokenizerOf(options.ModelPath)
                ?? throw new OptionException("tokenizer", "{model} needs {tokenizer} (tokenizer.json, vocab.txt, a folder, or a tiktoken name).");
            settings = new GeneratorBackendOptions
            {
                ModelPath = options.ModelPath!,
                Tokenizer = tokenizer,
                Template = options.Template,
                ModelId = options.ModelId,
                Runtime = options.Runtime,
            };
        }
        if (options.MaxPromptTokens is { } promptLimit) settings = settings with { MaxPromptTokens = promptLimit };
        if (options.DefaultMaxTokens is { } max)
            settings = settings with { DefaultMaxTokens = max, MaxTokensLimit = Math.Max(max, settings.MaxTokensLimit) };
        return new GeneratorChatBackend(settings);
    }
}
