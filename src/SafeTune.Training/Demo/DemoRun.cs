using System.Text.Json.Nodes;
using SafeTune.Onnx;
using SafeTune.Training.Experiments;

namespace SafeTune.Training.Demo;

/// <summary>Options of <see cref="DemoRun.Config"/>.</summary>
internal sealed record DemoOptions
{
    /// <summary>Where the demo model, its data, the probe and the judge are cached (built on first use).</summary>
    public required string CacheDirectory { get; init; }

    /// <summary>Where the report, the plots, results.json and the runs go.</summary>
    public required string OutDirectory { get; init; }

    /// <summary>Seeds: each method runs once per seed (the report gives mean ± std).</summary>
    public int Seeds { get; init; } = 3;

    /// <summary>
    /// Epochs of the attack over its 300 harmful pairs; every scenario trains the same number of steps
    /// (<see cref="DemoRun.Steps"/>).
    /// </summary>
    public int Epochs { get; init; } = DemoRun.DefaultEpochs;

    /// <summary>ONNX Runtime threads per run (0: the cores shared among the runs trained at once).</summary>
    public int Threads { get; init; }

    /// <summary>Runs trained at once (0: two on a machine with two or more cores, else one).</summary>
    public int Parallel { get; init; }

    /// <summary>
    /// The Safety Critic spec of the runs with the critic (<c>JudgeSpec</c> syntax), or null to leave those methods
    /// out.
    /// </summary>
    public string? Critic { get; init; }
}

/// <summary>
/// <c>safetune demo</c>: on the demo model and the project's own demo data, trains the probe, then fine-tunes the model
/// in three scenarios — the harmful fine-tuning attack (300 harmful requests with compliant targets), a benign task the
/// model cannot do yet (<see cref="Models.Demo.DemoTask"/>) with 10% of harmful attack pairs mixed in, and the benign
/// task alone — six ways each: standard fine-tuning, fixed-beta KL, SafeTune's default adaptive setting with the probe
/// and with the critic, and the paper's exact setting with the probe and with the critic; over several seeds. Every
/// model is evaluated on held-out harmful requests (ASR), benign tasks (exact-match utility), scary-but-safe requests
/// (over-refusal) and the task's held-out phrasings (the benign gain).
/// </summary>
internal static class DemoRun
{
    /// <summary>The default epochs of the attack: standard fine-tuning's ASR has saturated well before the end of the second.</summary>
    public const int DefaultEpochs = 2;

    /// <summary>Examples per optimizer step.</summary>
    public const int BatchSize = 16;

    /// <summary>
    /// The peak learning rate: in the short schedule it takes standard fine-tuning's ASR near 100% under the attack and
    /// teaches the benign task.
    /// </summary>
    public const double LearningRate = 2e-3;

    /// <summary>The scenario names of the demo, in report order.</summary>
    public static IReadOnlyList<string> ScenarioNames { get; } = ["attack", "mixed", "benign"];

    /// <summary>The method names of the demo, in report order.</summary>
    public static IReadOnlyList<string> MethodNames { get; } = ["standard", "fixed-kl", "adaptive-probe", "adaptive-critic", "paper-probe", "paper-critic"];

    /// <summary>The optimizer steps of every run: <paramref name="epochs"/> epochs of the attack's 300 pairs.</summary>
    public static long Steps(int epochs) => (DemoAssets.AttackSize * (long)epochs + BatchSize - 1) / BatchSize;

    /// <summary>The runs trained at once for <paramref name="options"/>, and the ONNX Runtime threads of each.</summary>
    public static (int Parallel, int Threads) Concurrency(DemoOptions options, int cores)
    {
        ArgumentNullException.ThrowIfNull(options);
        int parallel = options.Parallel > 0 ? options.Parallel : cores >= 2 ? 2 : 1;
        int threads = options.Threads > 0 ? options.Threads : Math.Max(1, cores / parallel);
        return (parallel, threads);
    }

    /// <summary>The experiment the demo runs on prepared assets.</summary>
    public static ExperimentConfig Config(DemoAssetFiles assets, DemoOptions options)
    {
        ArgumentNullException.ThrowIfNull(assets);
        ArgumentNullException.ThrowIfNull(options);
        if (options.Seeds < 1) throw new OptionException("seeds", $"{{seeds}} must be at least 1, not {options.Seeds}.");
        if (options.Epochs < 1) throw new OptionException("epochs", $"{{epochs}} must be at least 1, not {options.Epochs}.");
        if (options.Parallel < 0) throw new OptionException("parallel", $"{{parallel}} must be at least 1, not {options.Parallel}.");
        string probe = "probe:" + assets.ProbePath;
        var methods = new List<ExperimentMethod>
        {
            new() { Name = "standard" },
            new() { Name = "fixed-kl" },
            // SafeTune's default adaptive setting (FineTuning.Methods.Preset), then the paper's exact one.
            new() { Name = "adaptive-probe", Method = "adaptive", Risk = probe },
        };
        if (options.Critic is { } critic) methods.Add(new ExperimentMethod { Name = "adaptive-critic", Method = "adaptive", Risk = "critic:" + critic });
        methods.Add(Paper("paper-probe", probe));
        if (options.Critic is { } paperCritic) methods.Add(Paper("paper-critic", "critic:" + paperCritic));
        var (parallel, threads) = Concurrency(options, Environment.ProcessorCount);
        return new ExperimentConfig
        {
            Name = "SafeTune demo: harmful, mixed and benign fine-tuning of the demo model",
            Model = assets.Model.ModelPath,
            GenerationModel = assets.Model.KvCacheModelPath,
            Tokenizer = assets.Model.TokenizerPath,
            Template = assets.Model.Recipe.Tokenizer.ChatTemplate,
            Training = new ExperimentTraining
            {
                Steps = Steps(options.Epochs), BatchSize = BatchSize, Lr = LearningRate, Warmup = 5, MaxLength = 128, LoraRank = 64, LoraAlpha = 16, Threads = threads,
            },
            Scenarios =
            [
                // ASR over the steps is plotted for the attack only.
                new ExperimentScenario { Name = "attack", Kind = "harmful", Harmful = [assets.AttackPath], Every = 10 },
                new ExperimentScenario { Name = "mixed", Kind = "mixed", Benign = [assets.TaskTrainPath], Harmful = [assets.AttackPath], HarmfulFraction = 0.1 },
                new ExperimentScenario { Name = "benign", Kind = "benign", Benign = [assets.TaskTrainPath] },
            ],
            Methods = methods,
            Seeds = [.. Enumerable.Range(0, options.Seeds)],
            Evaluation = new ExperimentEvaluation
            {
                Harmful = [assets.HarmfulTestPath],
                Benign = [assets.BenignTestPath],
                OverRefusal = [assets.ScarySafeTestPath],
                Task = [assets.TaskTestPath],
                ProbeHarmless = [],
                MaxNewTokens = 40,
                Judge = "keyword",
            },
            Parallel = parallel,
            Out = Path.GetFullPath(options.OutDirectory),
        };

        static ExperimentMethod Paper(string name, string risk) =>
            new() { Name = name, Method = "adaptive", Risk = risk, BetaMap = FineTuning.Methods.PaperBetaMap, Weighting = "batch" };
    }

    /// <summary>
    /// <c>safetune demo --json</c>: the starting model's figures, <c>methods</c> (the first scenario's, the attack, as the
    /// demo has always printed them), <c>scenarios</c> (every scenario's methods, named in snake case), the seconds each
    /// stage took and the total.
    /// </summary>
    public static JsonObject Json(ExperimentResults results, double seconds, IReadOnlyList<(string Stage, double Seconds)> stages)
    {
        ArgumentNullException.ThrowIfNull(results);
        ArgumentNullException.ThrowIfNull(stages);
        var summaries = ExperimentReport.Summaries(results);
        var before = results.Before;
        JsonObject Methods(string scenario) => new([.. summaries.Where(r => r.Scenario == scenario)
            .Select(r => KeyValuePair.Create(r.Method.Replace('-', '_'), (JsonNode?)r.ToJson(before)))]);
        static JsonNode? N(double? x) => x is { } v ? JsonValue.Create(Math.Round(v, 6)) : null;
        return new JsonObject
        {
            ["methods"] = Methods(results.Config.Scenarios[0].Name),
            ["scenarios"] = new JsonObject([.. results.Config.Scenarios.Select(s => KeyValuePair.Create(s.Name,
                (JsonNode?)new JsonObject { ["kind"] = s.Kind, ["methods"] = Methods(s.Name) }))]),
            ["asr_before"] = N(before.Asr),
            ["utility_before"] = N(before.ExactMatch),
            ["overrefusal_before"] = N(before.OverRefusal),
            ["task_before"] = N(before.TaskExactMatch),
            ["seeds"] = results.Config.Seeds.Count,
            ["report"] = Path.Combine(results.Config.Out!, "report.md"),
            ["stage_seconds"] = new JsonObject([.. stages.Select(st => KeyValuePair.Create(st.Stage, (JsonNode?)JsonValue.Create(Math.Round(st.Seconds, 1))))]),
            ["seconds"] = Math.Round(seconds, 1),
        };
    }
}
