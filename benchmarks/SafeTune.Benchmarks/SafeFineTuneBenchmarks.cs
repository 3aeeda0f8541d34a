using BenchmarkDotNet.Attributes;
using SafeTune.Autodiff.Lora;
using SafeTune.Models.Decoders;
using SafeTune.Runtime;
using SafeTune.Runtime.Training;
using SafeTune.Safety.Probes;
using SafeTune.Training.FineTuning;
using SafeTune.Training.Risk;

namespace SafeTune.Benchmarks;

/// <summary>
/// One safe fine-tuning step (LoRA r = 64 on every projection, AdamW) of the benchmark decoder
/// (<see cref="LlamaConfig.Bench"/>, 4.26M parameters; 8 rows of 128 tokens whose first 48 are the prompt) and of a
/// decoder of the demo model's shape (4 layers, width 128, vocabulary 768; 16 rows of 48 tokens, the first 24 the prompt):
/// standard fine-tuning (no reference pass), fixed-beta KL (reference pass + KL), and adaptive with an activation probe
/// fused into the reference pass (the probe reads the reference's own prompt activations, so it adds no forward pass).
/// <c>AdaptiveFusedProbe / FixedKl</c> is the probe's cost in a training step.
/// </summary>
[MemoryDiagnoser]
public class SafeFineTuneBenchmarks
{
    private FineTuneEngine _standard = null!, _fixedKl = null!, _adaptive = null!;
    private TrainingBatch[] _batch = null!;

    private sealed class OneBatchPlan(TrainingBatch[] batch) : ITrainingPlan
    {
        public long Steps => long.MaxValue;
        public IReadOnlyList<TrainingBatch> Step(long step) => batch;
    }

    /// <summary>A logistic probe with fixed random weights on the decoder's width, reading every layer.</summary>
    internal static ProbeFile RandomProbe(int width, int layers)
    {
        var rng = new Random(5);
        var head = new LogisticRegression(new Standardizer(new double[width], [.. Enumerable.Repeat(1.0, width)]),
            [.. Enumerable.Range(0, width).Select(_ => rng.NextDouble() - 0.5)], 0.1, 1e-3);
        return new ProbeFile { ModelPath = "bench.onnx", ModelSha256 = "0", Tokenizer = "bench", LayerCount = layers, Head = head };
    }

    /// <summary>The decoder: <c>bench</c> (<see cref="LlamaConfig.Bench"/>) or <c>demo</c> (the demo model's shape).</summary>
    [Params("bench", "demo")]
    public string Model { get; set; } = "bench";

    private static LlamaConfig Config(string model) => model == "demo" ? Models.Demo.DemoRecipe.Default.LlamaConfig(768) : LlamaConfig.Bench;

    /// <summary>A batch with prompts masked out of the labels.</summary>
    internal static TrainingBatch[] PromptBatch(int Rows = 8, int Length = 128, int Prompt = 48, int vocab = 4096)
    {
        var rng = new Random(1);
        var ids = Enumerable.Range(0, Rows * Length).Select(_ => (long)rng.Next(vocab)).ToArray();
        var tokens = new TokenBatch(ids, [.. ids.Skip(1).Append(-100L)], null, Rows, Length);
        var labels = tokens.Labels.ToArray();
        var mask = new long[Rows * Length];
        var examples = new TrainingExample[Rows];
        for (int r = 0; r < Rows; r++)
        {
            for (int p = 0; p < Prompt; p++)
            {
                mask[r * Length + p] = 1;
                if (p < Prompt - 1) labels[r * Length + p] = -100;
            }
            examples[r] = new TrainingExample($"row{r}", "prompt", "response", r, 0, Length, Prompt);
        }
        return [new TrainingBatch(tokens with { Labels = labels }, mask, examples)];
    }

    /// <summary>Builds the three engines.</summary>
    [GlobalSetup]
    public void Setup()
    {
        var config = Config(Model);
        var model = LlamaGraph.Build(config, seed: 0);
        _batch = Model == "demo" ? PromptBatch(16, 48, 24, config.VocabSize) : PromptBatch();
        FineTuneEngine Engine(SafetyOptions safety, RiskSource? risk) => FineTuneEngine.Create(new FineTuneOptions
        {
            Model = model,
            Plan = new OneBatchPlan(_batch),
            Lora = new LoraOptions { Rank = 64, Alpha = 16 },
            Optimizer = new OptimizerConfig { LearningRate = 1e-4, WeightDecay = 0.01 },
            Safety = safety,
            RiskSource = risk,
            Runtime = new SessionConfig(),
        });
        _standard = Engine(Methods.Preset("standard"), null);
        _fixedKl = Engine(Methods.Preset("fixed-kl"), null);
        _adaptive = Engine(Methods.Preset("adaptive", "probe:bench.json"), new FusedProbeRisk(RandomProbe(config.HiddenSize, config.Layers)));
    }

    /// <summary>Standard fine-tuning: forward, backward, optimizer.</summary>
    [Benchmark]
    public double Standard() => _standard.Step(_batch).Loss;

    /// <summary>Fixed-beta KL: the reference pass, then the weighted SFT + KL objective.</summary>
    [Benchmark(Baseline = true)]
    public double FixedKl() => _fixedKl.Step(_batch).Loss;

    /// <summary>Adaptive: the same, with the probe fused into the reference pass and beta from its risk.</summary>
    [Benchmark]
    public double AdaptiveFusedProbe() => _adaptive.Step(_batch).Loss;

    /// <summary>Releases the engines.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _standard.Dispose();
        _fixedKl.Dispose();
        _adaptive.Dispose();
    }
}

/// <summary>
/// Inference latency of the model before fine-tuning and of the merged output of a LoRA fine-tune: the same graph, so
/// the ratio should be 1 within noise (zero inference-time cost). Forward pass of <see cref="LlamaConfig.Bench"/> on
/// 8 x 128 tokens.
/// </summary>
public class MergedModelLatencyBenchmarks
{
    private Microsoft.ML.OnnxRuntime.InferenceSession _input = null!, _merged = null!;
    private Microsoft.ML.OnnxRuntime.OrtValue _ids = null!;

    /// <summary>Fine-tunes a few LoRA steps, merges, and opens both sessions.</summary>
    [GlobalSetup]
    public void Setup()
    {
        var model = LlamaGraph.Build(LlamaConfig.Bench, seed: 0);
        var batch = SafeFineTuneBenchmarks.PromptBatch();
        using (var engine = FineTuneEngine.Create(new FineTuneOptions
        {
            Model = model,
            Plan = new SingleStepPlan(batch),
            Lora = new LoraOptions { Rank = 64, Alpha = 16 },
            Optimizer = new OptimizerConfig { LearningRate = 1e-3 },
            Safety = Methods.Preset("standard"),
        }))
        {
            for (int i = 0; i < 3; i++) engine.Step(batch);
            var (merged, _) = engine.Export();
            ModelExport.AssertSameGraph(model, merged);
            _merged = SessionFactory.Create(merged);
        }
        _input = SessionFactory.Create(model);
        _ids = OrtValues.Wrap(batch[0].Tokens.InputIds, 8, 128);
    }

    private sealed class SingleStepPlan(TrainingBatch[] batch) : ITrainingPlan
    {
        public long Steps => 3;
        public IReadOnlyList<TrainingBatch> Step(long step) => batch;
    }

    private static float Forward(Microsoft.ML.OnnxRuntime.InferenceSession session, Microsoft.ML.OnnxRuntime.OrtValue ids)
    {
        using var options = new Microsoft.ML.OnnxRuntime.RunOptions();
        using var outputs = session.Run(options, ["input_ids"], [ids], ["logits"]);
        return outputs[0].GetTensorDataAsSpan<float>()[0];
    }

    /// <summary>The model before fine-tuning.</summary>
    [Benchmark(Baseline = true)]
    public float InputModel() => Forward(_input, _ids);

    /// <summary>The merged fine-tuned model.</summary>
    [Benchmark]
    public float MergedModel() => Forward(_merged, _ids);

    /// <summary>Releases the sessions.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _input.Dispose();
        _merged.Dispose();
        _ids.Dispose();
    }
}

/// <summary>
/// The reference pass alone (log-probabilities at the response positions) of <see cref="LlamaConfig.Bench"/> on the
/// same 8 x 128 batch, without and with the probe fused into it: what the fused probe itself costs.
/// </summary>
public class FusedProbeReferenceBenchmarks
{
    private ReferencePolicy _plain = null!, _fused = null!;
    private TrainingBatch _batch = null!;
    private long[] _index = null!;
    private Microsoft.ML.OnnxRuntime.OrtValue _mask = null!;
    private Dictionary<string, Microsoft.ML.OnnxRuntime.OrtValue> _inputs = null!;

    /// <summary>Builds both reference graphs.</summary>
    [GlobalSetup]
    public void Setup()
    {
        var model = LlamaGraph.Build(LlamaConfig.Bench, seed: 0);
        _batch = SafeFineTuneBenchmarks.PromptBatch()[0];
        _index = _batch.ResponseIndex();
        var probe = SafeFineTuneBenchmarks.RandomProbe(LlamaConfig.Bench.HiddenSize, LlamaConfig.Bench.Layers);
        _plain = ReferencePolicy.Create(model);
        _fused = ReferencePolicy.Create(model, new ReferenceOptions { Extend = m => [ProbeGraph.Append(m, probe).Output] });
        _mask = OrtValues.Wrap(_batch.PromptMask, _batch.Tokens.BatchSize, _batch.Tokens.SequenceLength);
        _inputs = new() { [ProbeGraph.DefaultPromptMaskInput] = _mask };
    }

    /// <summary>The reference pass.</summary>
    [Benchmark(Baseline = true)]
    public void Reference()
    {
        using var o = _plain.Run(_batch.Tokens, _index);
    }

    /// <summary>The reference pass that also returns the probe's risk.</summary>
    [Benchmark]
    public void ReferenceWithProbe()
    {
        using var o = _fused.Run(_batch.Tokens, _index, _inputs);
    }

    /// <summary>Releases the sessions.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _plain.Dispose();
        _fused.Dispose();
        _mask.Dispose();
    }
}
