using SafeTune.Onnx;
using SafeTune.Training.Experiments;

namespace SafeTune.Training.Demo;

/// <summary>Options of <see cref="DemoRun.Run"/>.</summary>
internal sealed record DemoOptions
{
    /// <summary>Where the demo model, its data, the probe and the judge are cached (built on first use).</summary>
    public required string CacheDirectory { get; init; }

    /// <summary>Where the report, the plots, results.json and the runs go.</summary>
    public required string OutDirectory { get; init; }

    /// <summary>Seeds: each method runs once per seed (the report gives mean ± std).</summary>
    public int Seeds { get; init; } = 3;

    /// <summary>Epochs of the attack (300 harmful pairs).</summary>
    public int Epochs { get; init; } = 5;

    /// <summary>ONNX Runtime threads (0: all cores).</summary>
    public int Threads { get; init; }

    /// <summary>
    /// The Safety Critic spec of the "adaptive with the critic" run (<c>JudgeSpec</c> syntax), or null to leave that
    /// method out.
    /// </summary>
    public string? Critic { get; init; }
}

/// <summary>
/// <c>safetune demo</c>: on the demo model and the project's own demo data, trains the probe, then runs the harmful
/// fine-tuning attack (300 harmful requests with compliant targets) four ways — standard fine-tuning, fixed-beta KL,
/// adaptive with the probe, adaptive with the critic — over several seeds, and evaluates each result on held-out
/// harmful requests (ASR), benign tasks (exact-match utility) and scary-but-safe requests (over-refusal).
/// </summary>
internal static class DemoRun
{
    /// <summary>The method names of the demo, in report order.</summary>
    public static IReadOnlyList<string> MethodNames { get; } = ["standard", "fixed-kl", "adaptive-probe", "adaptive-critic"];

    /// <summary>The experiment the demo runs on prepared assets.</summary>
    public static ExperimentConfig Config(DemoAssetFiles assets, DemoOptions options)
    {
        ArgumentNullException.ThrowIfNull(assets);
        ArgumentNullException.ThrowIfNull(options);
        if (options.Seeds < 1) throw new OptionException("seeds", $"{{seeds}} must be at least 1, not {options.Seeds}.");
        if (options.Epochs < 1) throw new OptionException("epochs", $"{{epochs}} must be at least 1, not {options.Epochs}.");
        var methods = new List<ExperimentMethod>
        {
            new() { Name = "standard" },
            new() { Name = "fixed-kl" },
            new() { Name = "adaptive-probe", Method = "adaptive", Risk = "probe:" + assets.ProbePath },
        };
        if (options.Critic is { } critic) methods.Add(new ExperimentMethod { Name = "adaptive-critic", Method = "adaptive", Risk = "critic:" + critic });
        return new ExperimentConfig
        {
            Name = "SafeTune demo: harmful fine-tuning attack on the demo model",
            Model = assets.Model.ModelPath,
            GenerationModel = assets.Model.KvCacheModelPath,
            Tokenizer = assets.Model.TokenizerPath,
            Template = assets.Model.Recipe.Tokenizer.ChatTemplate,
            Training = new ExperimentTraining
            {
                Epochs = options.Epochs, BatchSize = 16, Lr = 1e-3, Warmup = 5, MaxLength = 128, LoraRank = 64, LoraAlpha = 16, Threads = options.Threads,
            },
            Scenarios = [new ExperimentScenario { Name = "harmful-attack", Kind = "harmful", Harmful = [assets.AttackPath] }],
            Methods = methods,
            Seeds = [.. Enumerable.Range(0, options.Seeds)],
            Evaluation = new ExperimentEvaluation
            {
                Harmful = [assets.HarmfulTestPath],
                Benign = [assets.BenignTestPath],
                OverRefusal = [assets.ScarySafeTestPath],
                ProbeHarmless = [],
                MaxNewTokens = 40,
                Judge = "keyword",
                Every = 20,
            },
            Out = Path.GetFullPath(options.OutDirectory),
        };
    }

    /// <summary>Prepares the assets (cached) and runs the demo experiment.</summary>
    public static ExperimentResults Run(DemoOptions options, IProgress<DemoAssetProgress>? assetProgress = null, IProgress<ExperimentProgress>? progress = null,
        CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var assets = DemoAssets.Prepare(options.CacheDirectory, assetProgress);
        return ExperimentRunner.Run(Config(assets, options), progress, cancellation);
    }
}
