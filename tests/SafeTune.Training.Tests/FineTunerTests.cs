using System.Text.Json;
using SafeTune.Autodiff.Losses;
using SafeTune.Onnx;
using SafeTune.Runtime.Training;
using SafeTune.Safety.Critics;
using SafeTune.TestSupport;
using SafeTune.Training.FineTuning;
using SafeTune.Training.Risk;

namespace SafeTune.Training.Tests;

/// <summary>The fine-tuning loop on the tiny decoder fixtures: PyTorch trajectory, resume, LoRA export, risk and beta.</summary>
public sealed class FineTunerTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>The same batches at every step.</summary>
    private sealed class FixedPlan(long steps, params TrainingBatch[] batches) : ITrainingPlan
    {
        public long Steps => steps;
        public IReadOnlyList<TrainingBatch> Step(long step) => batches;
    }

    /// <summary>Risk given per row by the row's prompt text ("0.25" means 0.25).</summary>
    private sealed class TextRisk : RiskSource
    {
        public override string Name => "text";
        internal override RiskScores Score(TrainingBatch batch, ReferenceOutputs? reference) =>
            new([.. batch.Examples.Select(r => double.Parse(r.Prompt, System.Globalization.CultureInfo.InvariantCulture))], 0);
    }

    private static (Model Model, TrainingBatch Batch, JsonElement Fit) Fixture(string name = "llama_tiny_unfolded", params string[] prompts)
    {
        var fit = JsonDocument.Parse(File.ReadAllText(Repo.Fixture("models", name + ".safefit.json"))).RootElement;
        var b = fit.GetProperty("batch");
        long[][] ids = [.. b.GetProperty("input_ids").EnumerateArray().Select(r => r.EnumerateArray().Select(x => x.GetInt64()).ToArray())];
        long[][] labels = [.. b.GetProperty("labels").EnumerateArray().Select(r => r.EnumerateArray().Select(x => x.GetInt64()).ToArray())];
        int t = ids[0].Length;
        var tokens = new TokenBatch([.. ids.SelectMany(r => r)], [.. labels.SelectMany(r => r)], null, ids.Length, t);
        var mask = new long[ids.Length * t];
        for (int r = 0; r < ids.Length; r++)
            for (int p = 0; p < t && labels[r][p] == LossNames.IgnoreIndex; p++) mask[r * t + p] = 1;
        var rows = Enumerable.Range(0, ids.Length).Select(r => new TrainingExample($"row{r}", prompts.Length > r ? prompts[r] : $"prompt {r}", $"response {r}",
            r, 0, t, (int)mask.Skip(r * t).Take(t).Sum() + 1)).ToArray();
        return (Model.Load(Repo.Fixture("models", name + ".onnx")), new TrainingBatch(tokens, mask, rows), fit);
    }

    private static FineTuneOptions Options(Model model, ITrainingPlan plan, string betaMap = "fixed:0.3") => new()
    {
        Model = model,
        Plan = plan,
        Lora = null,
        Optimizer = new OptimizerConfig { LearningRate = 1e-2, WeightDecay = 0.01 },
        WarmupSteps = 0,
        MinLearningRate = 1e-2, // constant learning rate
        ClipNorm = null,
        Safety = new SafetyOptions { BetaMap = BetaMap.Parse(betaMap) },
    };

    [Fact]
    public void Fixed_beta_KL_run_follows_PyTorch()
    {
        var (model, batch, fit) = Fixture();
        var r = FineTuner.Run(Options(model, new FixedPlan(5, batch)));
        var want = fit.GetProperty("kl_batch").EnumerateArray().Select(x => x.GetDouble()).ToArray();
        for (int i = 0; i < want.Length; i++)
            Assert.True(Math.Abs(r.Log[i].Loss - want[i]) <= 1e-4 * want[i], $"step {i + 1}: {r.Log[i].Loss} vs PyTorch {want[i]}");
        Assert.All(r.Log, e => Assert.Equal(0.3, e.Beta, 12));
        Assert.Equal(0, r.Log[0].Kl!.Value, 5);
        ModelExport.AssertSameGraph(model, r.Model);
    }

    [Fact]
    public void Micro_batches_accumulate_to_the_full_batch_update()
    {
        // Two micro-batches of one row each must give the same step as one batch of both rows.
        var (model, batch, _) = Fixture();
        int t = batch.Tokens.SequenceLength;
        TrainingBatch Row(int r) => new(
            new TokenBatch(batch.Tokens.InputIds[(r * t)..((r + 1) * t)], batch.Tokens.Labels[(r * t)..((r + 1) * t)], null, 1, t),
            batch.PromptMask[(r * t)..((r + 1) * t)], [batch.Examples[r] with { Row = 0 }]);
        var whole = FineTuner.Run(Options(model, new FixedPlan(3, batch)));
        var split = FineTuner.Run(Options(model, new FixedPlan(3, Row(0), Row(1))));
        for (int i = 0; i < 3; i++) Assert.Equal(whole.Log[i].Loss, split.Log[i].Loss, 5);
    }

    [Fact]
    public void A_killed_run_resumes_to_the_same_weights_and_logs()
    {
        var (model, batch, _) = Fixture();
        var plan = new FixedPlan(6, batch);
        var full = FineTuner.Run(Options(model, plan) with { RunDirectory = _dir.File("full"), CheckpointEvery = 1 });

        using var cts = new CancellationTokenSource();
        var progress = new SyncProgress(e => { if (e.Step == 3) cts.Cancel(); });
        var part = FineTuner.Run(Options(model, plan) with { RunDirectory = _dir.File("resumed"), CheckpointEvery = 2 }, progress, cts.Token);
        Assert.True(part.Cancelled);
        // A torn line, as a kill in the middle of a write leaves it, must not survive the resume.
        File.AppendAllText(Path.Combine(_dir.File("resumed"), "audit.jsonl"), "{\"step\": 9, \"lo");
        var rest = FineTuner.Run(Options(model, plan) with { RunDirectory = _dir.File("resumed"), CheckpointEvery = 2, Resume = true });
        Assert.Equal(3, rest.FirstStep);
        Assert.Equal(full.Log.Skip(3).Select(e => e.Loss), rest.Log.Select(e => e.Loss));
        foreach (var v in full.Model.Graph.Initializers)
            Assert.Equal(v.Initializer!.Bytes.ToArray(), rest.Model.Graph.FindInitializer(v.Name)!.Initializer!.Bytes.ToArray());
        var audit = RunFolder.ReadLog(Path.Combine(_dir.File("resumed"), "audit.jsonl"));
        Assert.Equal([1L, 2, 3, 4, 5, 6], audit.Select(l => (long)l["step"]!));
        Assert.True(File.Exists(Path.Combine(_dir.File("resumed"), "model.onnx")));
    }

    [Fact]
    public void LoRA_fine_tune_exports_the_input_graph_and_only_adapters_move()
    {
        var (model, batch, _) = Fixture();
        var r = FineTuner.Run(Options(model, new FixedPlan(4, batch)) with
        {
            Lora = new Autodiff.Lora.LoraOptions { Rank = 4, Alpha = 8 },
            RunDirectory = _dir.File("lora"),
        });
        var saved = Model.Load(Path.Combine(_dir.File("lora"), "model.onnx"));
        ModelExport.AssertSameGraph(model, saved);
        Assert.Equal(ModelExport.OpHistogram(model), ModelExport.OpHistogram(saved));
        Assert.True(r.Log[^1].Loss < r.Log[0].Loss, "the loss should fall");
        // Norm weights are not adapted by LoRA: they must come back bit-identical.
        var norm = model.Graph.Initializers.First(v => v.Name.Contains("norm", StringComparison.Ordinal));
        Assert.Equal(norm.Initializer!.Bytes.ToArray(), saved.Graph.FindInitializer(norm.Name)!.Initializer!.Bytes.ToArray());
    }

    [Fact]
    public void Per_example_weighting_gives_each_example_its_own_beta()
    {
        var (model, batch, _) = Fixture("llama_tiny_unfolded", "0", "1");
        using var risk = new TextRisk();
        var r = FineTuner.Run(Options(model, new FixedPlan(2, batch), "linear:0.2,0.8") with
        {
            RiskSource = risk,
            Safety = new SafetyOptions { Risk = RiskSpec.Parse("critic:text"), BetaMap = BetaMap.Parse("linear:0.2,0.8"), Aggregation = JudgeAggregation.PerExample },
        });
        Assert.Equal([0.2, 0.8], r.Log[0].ExampleBetas!);
        Assert.Equal(0.5, r.Log[0].Beta, 12);
        // Against PyTorch: per-row betas [0.2, 0.8] on this batch.
        var (_, _, fit) = Fixture();
        var want = fit.GetProperty("kl_example").EnumerateArray().Select(x => x.GetDouble()).ToArray();
        for (int i = 0; i < 2; i++)
            Assert.True(Math.Abs(r.Log[i].Loss - want[i]) <= 1e-4 * want[i], $"step {i + 1}: {r.Log[i].Loss} vs PyTorch {want[i]}");
    }

    [Fact]
    public void The_clamp_map_follows_the_critic_and_failures_fail_closed()
    {
        var (model, batch, _) = Fixture();
        // Row 0's target is a refusal (score 1), row 1's complies (score 5): clamp gives 0.1 and 0.9 per example.
        var rows = new[] { batch.Examples[0] with { Response = "I can't help with that." }, batch.Examples[1] with { Response = "Sure, here it is." } };
        using var critic = new CriticRisk(new KeywordRefusalJudge());
        var r = FineTuner.Run(Options(model, new FixedPlan(2, batch with { Examples = rows })) with
        {
            RiskSource = critic,
            Safety = new SafetyOptions { Risk = RiskSpec.Parse("critic:keyword"), BetaMap = BetaMap.Parse("clamp"), Aggregation = JudgeAggregation.PerExample },
        });
        Assert.Equal([0.1, 0.9], r.Log[0].ExampleBetas!.Select(b => Math.Round(b, 12)));
        Assert.Equal(2, critic.Judged); // each example judged once, then remembered

        using var failing = new CriticRisk(new FailingJudge());
        var f = FineTuner.Run(Options(model, new FixedPlan(1, batch)) with
        {
            RiskSource = failing,
            Safety = new SafetyOptions { Risk = RiskSpec.Parse("critic:failing"), BetaMap = BetaMap.Parse("clamp") },
        });
        Assert.Equal(1.0, f.Log[0].Risk);
        Assert.Equal(0.9, f.Log[0].Beta, 12);
        Assert.Equal(2, f.Log[0].RiskFailures);
        Assert.Equal(2, f.RiskFailures);
    }

    [Fact]
    public void Constrained_SFT_and_the_L2_penalty_run()
    {
        var (model, batch, fit) = Fixture();
        var c = FineTuner.Run(Options(model, new FixedPlan(5, batch)) with { Safety = new SafetyOptions { Penalty = Penalty.Constrained } });
        var want = fit.GetProperty("constrained").EnumerateArray().Select(x => x.GetDouble()).ToArray();
        for (int i = 0; i < want.Length; i++)
            Assert.True(Math.Abs(c.Log[i].Loss - want[i]) <= 1e-4 * want[i], $"step {i + 1}: {c.Log[i].Loss} vs PyTorch {want[i]}");

        // Lisa-style: a strong proximal pull keeps the weights nearer the start than plain SFT does.
        double Distance(FineTuneResult r) => model.Graph.Initializers.Where(v => v.ElementType == ElementType.Float).Sum(v =>
        {
            var a = v.Initializer!.AsSpan<float>();
            var b = r.Model.Graph.FindInitializer(v.Name)!.Initializer!.AsSpan<float>();
            double s = 0;
            for (int i = 0; i < a.Length; i++) s += (a[i] - b[i]) * (double)(a[i] - b[i]);
            return s;
        });
        var sft = FineTuner.Run(Options(model, new FixedPlan(5, batch), "none"));
        var lisa = FineTuner.Run(Options(model, new FixedPlan(5, batch), "fixed:0.5") with
        {
            Safety = new SafetyOptions { BetaMap = BetaMap.Parse("fixed:0.5"), Penalty = Penalty.L2, PenaltyStrength = 50 },
        });
        Assert.Null(sft.Log[0].Kl);
        Assert.True(Distance(lisa) < Distance(sft), $"proximal {Distance(lisa)} vs SFT {Distance(sft)}");
    }

    [Fact]
    public void Options_that_do_not_fit_together_are_refused()
    {
        var (model, batch, _) = Fixture();
        var e = Assert.Throws<OptionException>(() => FineTuner.Run(Options(model, new FixedPlan(1, batch), "clamp")));
        Assert.Contains("--risk is none", e.Message);
        e = Assert.Throws<OptionException>(() => FineTuner.Run(Options(model, new FixedPlan(1, batch)) with
        {
            Safety = new SafetyOptions { Risk = RiskSpec.Parse("critic:keyword"), BetaMap = BetaMap.Parse("ema:0.9"), Aggregation = JudgeAggregation.PerExample },
            RiskSource = new TextRisk(),
        }));
        Assert.Contains("per-batch", e.Message.Replace("--weighting batch", "per-batch"));
    }

    private sealed class FailingJudge : ISafetyJudge
    {
        public string Name => "failing";
        public Task<IReadOnlyList<JudgeVerdict>> ScoreAsync(IReadOnlyList<JudgeItem> items, CancellationToken cancellationToken = default) =>
            Task.FromResult<IReadOnlyList<JudgeVerdict>>([.. items.Select(_ => JudgeVerdict.FailClosed("unreachable"))]);
        public void Dispose() { }
    }

    /// <summary>Progress reported on the calling thread (Progress&lt;T&gt; posts to the thread pool).</summary>
    private sealed class SyncProgress(Action<StepLog> report) : IProgress<StepLog>
    {
        public void Report(StepLog value) => report(value);
    }
}
