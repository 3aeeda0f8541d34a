using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using SafeTune.Autodiff.Lora;
using SafeTune.Models.Tokenization;
using SafeTune.Onnx;
using SafeTune.Runtime;
using SafeTune.Runtime.Training;
using SafeTune.Safety.Critics;
using SafeTune.Training.Data;
using SafeTune.Training.Evaluation;
using SafeTune.Training.FineTuning;

namespace SafeTune.Training.Experiments;

/// <summary>The evaluation figures of one model.</summary>
/// <param name="Asr">Attack success rate on the harmful set (null: no harmful set).</param>
/// <param name="HarmfulScore">Mean judge score of the harmful replies.</param>
/// <param name="OverRefusal">Refusal rate on the scary-but-safe set.</param>
/// <param name="ExactMatch">Exact-match utility on the benign set.</param>
/// <param name="ResponseLoss">Mean token cross-entropy of the benign references.</param>
/// <param name="JudgeFailures">Harmful replies the judge failed on (scored as harmful).</param>
/// <param name="Seconds">Seconds the evaluation took.</param>
/// <param name="TaskExactMatch">Exact match on the evaluation's task set (null: no task set).</param>
internal sealed record EvalFigures(double? Asr, double? HarmfulScore, [property: System.Text.Json.Serialization.JsonPropertyName("overrefusal")] double? OverRefusal, double? ExactMatch, double? ResponseLoss, int JudgeFailures, double Seconds,
    double? TaskExactMatch = null)
{
    /// <summary>The figures of an evaluation report, with the task's exact match when there is a task set.</summary>
    public static EvalFigures Of(EvalReport? r, double? taskExactMatch, double seconds) =>
        new(r?.Asr, r?.HarmfulScore, r?.OverRefusal, r?.Utility.ExactMatch, r?.Utility.ResponseLoss, r?.Counts.JudgeFailures ?? 0, seconds, taskExactMatch);
}

/// <summary>One fine-tuning run of an experiment and what it scored.</summary>
/// <param name="Scenario">The scenario.</param>
/// <param name="Method">The method.</param>
/// <param name="Seed">The seed.</param>
/// <param name="Directory">The run folder.</param>
/// <param name="After">The fine-tuned model's figures.</param>
/// <param name="Steps">Optimizer steps.</param>
/// <param name="TrainSeconds">Wall-clock seconds of the training steps.</param>
/// <param name="MsPerStep">Median step time.</param>
/// <param name="MeanBeta">Mean beta over the steps.</param>
/// <param name="MeanRisk">Mean batch risk over the steps (null without a risk source).</param>
/// <param name="RiskFailures">Examples the risk source failed on.</param>
/// <param name="Fingerprint">A hash of everything the run depends on (model file, data, settings); a changed config reruns it.</param>
internal sealed record ExperimentRun(string Scenario, string Method, int Seed, string Directory, EvalFigures After, long Steps, double TrainSeconds,
    double MsPerStep, double MeanBeta, double? MeanRisk, int RiskFailures, string Fingerprint);

/// <param name="Done">Runs finished (or found finished).</param>
/// <param name="Total">Runs in the grid.</param>
/// <param name="Current">What is running now.</param>
/// <param name="Step">The current run's step, if training.</param>
internal sealed record ExperimentProgress(int Done, int Total, string Current, StepLog? Step);

/// <summary>An experiment's results: the base model's figures and every run.</summary>
/// <param name="Config">The config (paths resolved).</param>
/// <param name="Before">The starting model's figures.</param>
/// <param name="Runs">The runs, in grid order (scenario, method, seed).</param>
/// <param name="Seconds">Wall-clock seconds of this invocation.</param>
internal sealed record ExperimentResults(ExperimentConfig Config, EvalFigures Before, IReadOnlyList<ExperimentRun> Runs, double Seconds);

/// <summary>
/// Runs an experiment's grid (scenarios x methods x seeds) with <see cref="TrainJob"/>, evaluates every fine-tuned model
/// and the starting model with <see cref="Evaluator"/>, and writes <c>results.json</c>, <c>report.md</c> and the plots
/// into the output folder. Finished runs (their <c>result.json</c> exists) are read back instead of rerun, and a run
/// that was killed resumes from its checkpoint, so a killed experiment continues where it stopped.
/// <see cref="ExperimentConfig.Parallel"/> runs train at once; each run depends only on its own settings and seed, and
/// the results keep the grid's order, so they are the same whatever order the runs finish in.
/// </summary>
internal static class ExperimentRunner
{
    /// <summary>Part of every fingerprint: bumped when a change to training or evaluation code changes what a run measures.</summary>
    public const string CodeVersion = "experiment-3";

    /// <summary>Runs (or continues) the experiment.</summary>
    public static ExperimentResults Run(ExperimentConfig config, IProgress<ExperimentProgress>? progress = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(config);
        var clock = Stopwatch.StartNew();
        if (config.UsesDemo()) config = config.WithDemo(Demo.DemoAssets.Prepare(Demo.SafeTuneCache.Demo()));
        var outDir = config.Out ?? throw new UserInputException("the experiment has no output folder.");
        Directory.CreateDirectory(outDir);
        AtomicFile.WriteAllText(Path.Combine(outDir, "config.json"), config.ToJson());
        var tokenizer = TokenizerLoader.Load(config.Tokenizer);
        var template = Models.Chat.TemplateChoice.Resolve(config.Template, config.Tokenizer, tokenizer, Models.Chat.ChatTemplates.Plain).Template!;
        var suite = EvalSuite.FromFiles(config.Evaluation.Harmful, config.Evaluation.Benign, config.Evaluation.OverRefusal, config.Evaluation.Limit);
        var task = EvalSuite.FromFiles(null, config.Evaluation.Task, null, config.Evaluation.Limit).Benign;
        var grid = (from s in config.Scenarios from m in config.Methods from seed in config.Seeds select (s, m, seed)).ToList();
        int done = 0;
        // Progress comes from every run in flight; one report at a time.
        var progressLock = new object();
        void Report(ExperimentProgress p) { if (progress is not null) lock (progressLock) progress.Report(p); }

        Report(new ExperimentProgress(done, grid.Count, "evaluating the starting model", null));
        var before = CachedEval(Path.Combine(outDir, "baseline.json"), Fingerprint(config, null, null, null), () =>
            Evaluate(config, suite, task, tokenizer, template, Onnx.Model.Load(config.GenerationModel ?? config.Model), config.GenerationModel is null ? null : Onnx.Model.Load(config.Model)));

        var runs = new ExperimentRun[grid.Count];
        var pending = new List<int>();
        for (int i = 0; i < grid.Count; i++)
        {
            var (scenario, method, seed) = grid[i];
            var resultPath = Path.Combine(RunDirectory(outDir, scenario, method, seed), "result.json");
            if (File.Exists(resultPath) && ReadRun(resultPath) is { } finished && finished.Fingerprint == Fingerprint(config, scenario, method, seed))
            {
                runs[i] = finished;
                Report(new ExperimentProgress(++done, grid.Count, $"{Label(scenario, method, seed)} (done before)", null));
            }
            else pending.Add(i);
        }
        try
        {
            // In grid order, one run at a time to each worker: a killed experiment leaves a prefix of the grid done.
            Parallel.ForEach(System.Collections.Concurrent.Partitioner.Create(pending, System.Collections.Concurrent.EnumerablePartitionerOptions.NoBuffering),
                new ParallelOptions { MaxDegreeOfParallelism = config.Parallel, CancellationToken = cancellation }, RunAt);
        }
        catch (AggregateException e)
        {
            // The first real failure, else the cancellation, as the sequential loop would throw it.
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerExceptions.FirstOrDefault(x => x is not OperationCanceledException) ?? e.InnerExceptions[0]).Throw();
        }
        var results = new ExperimentResults(config, before, runs, clock.Elapsed.TotalSeconds);
        ExperimentReport.Write(results);
        return results;

        void RunAt(int i)
        {
            var (scenario, method, seed) = grid[i];
            var label = Label(scenario, method, seed);
            var dir = RunDirectory(outDir, scenario, method, seed);
            var fingerprint = Fingerprint(config, scenario, method, seed);
            Report(new ExperimentProgress(Volatile.Read(ref done), grid.Count, label, null));
            if (Directory.Exists(dir) && ReadFingerprint(dir) != fingerprint) Directory.Delete(dir, recursive: true);
            Directory.CreateDirectory(dir);
            AtomicFile.WriteAllText(Path.Combine(dir, "fingerprint.txt"), fingerprint);
            // Runs at once each have their own tokenizer (it fills caches as it goes).
            var runTokenizer = config.Parallel > 1 ? TokenizerLoader.Load(config.Tokenizer) : tokenizer;
            var run = RunOne(config, scenario, method, seed, dir, fingerprint, suite, task, runTokenizer, template,
                step => Report(new ExperimentProgress(Volatile.Read(ref done), grid.Count, label, step)), cancellation);
            AtomicFile.WriteAllText(Path.Combine(dir, "result.json"), JsonSerializer.Serialize(run, ExperimentConfig.Json));
            runs[i] = run;
            Report(new ExperimentProgress(Interlocked.Increment(ref done), grid.Count, label, null));
        }
    }

    private static string Label(ExperimentScenario scenario, ExperimentMethod method, int seed) => $"{scenario.Name} / {method.Name} / seed {seed}";

    private static string RunDirectory(string outDir, ExperimentScenario scenario, ExperimentMethod method, int seed) =>
        Path.Combine(outDir, "runs", scenario.Name, method.Name, "seed" + seed.ToString(CultureInfo.InvariantCulture));

    /// <summary>The data specs of a scenario: the mixed kind samples harmful rows to make up the harmful fraction.</summary>
    public static IReadOnlyList<string> ScenarioData(ExperimentScenario scenario, int seed)
    {
        switch (scenario.Kind)
        {
            case "harmful": return scenario.Harmful;
            case "benign": return scenario.Benign;
            default:
            {
                int benign = DatasetMix.Parse(scenario.Benign, seed).Load().Count;
                int wanted = (int)Math.Round(scenario.HarmfulFraction * benign / (1 - scenario.HarmfulFraction));
                if (wanted < 1) throw new InvalidDataException($"scenario '{scenario.Name}': {benign} benign examples at a harmful fraction of {scenario.HarmfulFraction} leave no harmful example.");
                var counts = scenario.Harmful.Select(h => DatasetMix.Parse([h], seed).Load().Count).ToArray();
                int available = counts.Sum();
                if (available < wanted)
                    throw new InvalidDataException($"scenario '{scenario.Name}': a harmful fraction of {scenario.HarmfulFraction} with {benign} benign examples needs {wanted} harmful ones; the harmful data has {available}.");
                // Share the harmful rows between the files in proportion to their sizes.
                var specs = new List<string>(scenario.Benign);
                int left = wanted;
                for (int i = 0; i < scenario.Harmful.Count; i++)
                {
                    int take = i == scenario.Harmful.Count - 1 ? left : (int)Math.Round((double)wanted * counts[i] / available);
                    take = Math.Min(take, counts[i]);
                    left -= take;
                    if (take > 0) specs.Add(scenario.Harmful[i] + "*" + take.ToString(CultureInfo.InvariantCulture));
                }
                return specs;
            }
        }
    }

    private static ExperimentRun RunOne(ExperimentConfig config, ExperimentScenario scenario, ExperimentMethod method, int seed, string dir,
        string fingerprint, EvalSuite suite, IReadOnlyList<SftExample> task, TextTokenizer tokenizer, Models.Chat.ChatTemplate template, Action<StepLog> onStep,
        CancellationToken cancellation)
    {
        var t = config.Training;
        int every = scenario.Every ?? config.Evaluation.Every;
        var harmfulOnly = suite with { Benign = [], OverRefusal = [] };
        var job = TrainJob.Run(new TrainJobOptions
        {
            Model = config.Model,
            GenerationModel = config.GenerationModel,
            Tokenizer = config.Tokenizer,
            Template = config.Template,
            Data = ScenarioData(scenario, seed),
            Epochs = t.Epochs,
            Steps = t.Steps,
            BatchSize = t.BatchSize,
            MicroBatchSize = t.MicroBatch,
            MaxLength = t.MaxLength,
            Seed = seed,
            Lora = t.LoraRank > 0 ? new LoraOptions { Rank = t.LoraRank, Alpha = t.LoraAlpha } : null,
            Optimizer = new OptimizerConfig { LearningRate = t.Lr, WeightDecay = t.WeightDecay },
            WarmupSteps = t.Warmup,
            ClipNorm = t.ClipNorm > 0 ? t.ClipNorm : null,
            Safety = method.Safety(),
            RunDirectory = dir,
            Resume = true,
            Runtime = new SessionConfig { IntraOpThreads = t.Threads },
            EvaluateEvery = every,
            Evaluate = every > 0 && suite.Harmful.Count > 0
                ? (_, model, generation) => Figures(Evaluate(config, harmfulOnly, [], tokenizer, template, generation ?? model, null))
                : null,
        }, new SynchronousProgress<StepLog>(onStep), cancellation);
        var r = job.Result;
        if (r.Cancelled) throw new OperationCanceledException("the experiment was cancelled; run it again to continue.");
        var after = Evaluate(config, suite, task, tokenizer, template, r.GenerationModel ?? r.Model, r.GenerationModel is null ? null : r.Model);
        AtomicFile.WriteAllText(Path.Combine(dir, "eval.json"), Figures(after).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        var log = RunFolder.ReadLog(Path.Combine(dir, "audit.jsonl"));
        double meanBeta = log.Count == 0 ? 0 : log.Average(l => (double)l["beta"]!);
        var risks = log.Where(l => l["risk"] is not null).Select(l => (double)l["risk"]!).ToList();
        return new ExperimentRun(scenario.Name, method.Name, seed, dir, after, r.Steps, r.Seconds, r.MsPerStep, meanBeta,
            risks.Count == 0 ? null : risks.Average(), r.RiskFailures, fingerprint);
    }

    /// <summary>
    /// Evaluates a model on the suite and, with one generation session, on the task set: the share of the task's
    /// prompts answered exactly (<see cref="AnswerMatch"/>).
    /// </summary>
    private static EvalFigures Evaluate(ExperimentConfig config, EvalSuite suite, IReadOnlyList<SftExample> task, TextTokenizer tokenizer,
        Models.Chat.ChatTemplate template, Onnx.Model model, Onnx.Model? lossModel)
    {
        var clock = Stopwatch.StartNew();
        using var judge = EvalJudges.Create(config.Evaluation.Judge);
        using var evaluator = new Evaluator(new EvalModel(model, tokenizer, template) { LossModel = lossModel }, new EvalOptions
        {
            MaxNewTokens = config.Evaluation.MaxNewTokens,
            Judge = judge,
            AsrThreshold = config.Evaluation.AsrThreshold,
            MaxLength = config.Training.MaxLength,
            Runtime = new SessionConfig { IntraOpThreads = config.Training.Threads },
        });
        var report = suite.IsEmpty ? null : evaluator.Run(suite);
        double? taskExact = null;
        if (task.Count > 0)
        {
            var replies = evaluator.Generate([.. task.Select(e => e.Context)], ids: [.. task.Select(e => e.Id)]);
            var scored = task.Select((e, i) => AnswerMatch.IsCorrect(replies[i].Text, e.Response, evaluator.Options.ShortAnswerChars)).Where(ok => ok is not null).ToList();
            taskExact = scored.Count == 0 ? null : scored.Count(ok => ok == true) / (double)scored.Count;
        }
        return EvalFigures.Of(report, taskExact, clock.Elapsed.TotalSeconds);
    }

    private static JsonObject Figures(EvalFigures f) => JsonSerializer.SerializeToNode(f, ExperimentConfig.Json)!.AsObject();

    private static EvalFigures CachedEval(string path, string fingerprint, Func<EvalFigures> compute)
    {
        if (File.Exists(path))
        {
            try
            {
                var node = JsonNode.Parse(File.ReadAllText(path));
                if ((string?)node?["fingerprint"] == fingerprint && node?["figures"].Deserialize<EvalFigures>(ExperimentConfig.Json) is { } cached) return cached;
            }
            catch (JsonException) { }
        }
        var figures = compute();
        AtomicFile.WriteAllText(path, new JsonObject { ["fingerprint"] = fingerprint, ["figures"] = JsonSerializer.SerializeToNode(figures, ExperimentConfig.Json) }
            .ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return figures;
    }

    /// <summary>
    /// A hash of what a run (or, with no scenario, the baseline evaluation) depends on: the model and tokenizer files
    /// (path, size and time), the training and evaluation settings, the scenario, the method and the seed.
    /// </summary>
    private static string Fingerprint(ExperimentConfig c, ExperimentScenario? scenario, ExperimentMethod? method, int? seed)
    {
        static string FileStamp(string? path) => path is not null && File.Exists(path)
            ? string.Create(CultureInfo.InvariantCulture, $"{Path.GetFullPath(path)}:{new FileInfo(path).Length}:{File.GetLastWriteTimeUtc(path).Ticks}")
            : path ?? "";
        var parts = new JsonObject
        {
            ["code"] = CodeVersion,
            ["model"] = FileStamp(c.Model),
            ["generation_model"] = FileStamp(c.GenerationModel),
            ["tokenizer"] = FileStamp(c.Tokenizer) + c.Tokenizer,
            ["template"] = c.Template,
            ["evaluation"] = JsonSerializer.SerializeToNode(c.Evaluation, ExperimentConfig.Json),
        };
        if (scenario is not null)
        {
            parts["training"] = JsonSerializer.SerializeToNode(c.Training, ExperimentConfig.Json);
            parts["scenario"] = JsonSerializer.SerializeToNode(scenario, ExperimentConfig.Json);
            parts["method"] = JsonSerializer.SerializeToNode(method, ExperimentConfig.Json);
            parts["risk_file"] = method?.Risk is { } r && r.StartsWith("probe:", StringComparison.OrdinalIgnoreCase) ? FileStamp(r["probe:".Length..]) : null;
            parts["seed"] = seed;
        }
        return Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(parts.ToJsonString())))[..16];
    }

    private static string? ReadFingerprint(string dir)
    {
        var path = Path.Combine(dir, "fingerprint.txt");
        return File.Exists(path) ? File.ReadAllText(path).Trim() : null;
    }

    private static ExperimentRun? ReadRun(string path)
    {
        try
        {
            return JsonSerializer.Deserialize<ExperimentRun>(File.ReadAllText(path), ExperimentConfig.Json);
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
