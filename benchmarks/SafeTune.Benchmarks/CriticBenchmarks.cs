using BenchmarkDotNet.Attributes;
using SafeTune.Models.Demo;
using SafeTune.Models.Tokenization;
using SafeTune.Pretrained;
using SafeTune.Runtime;
using SafeTune.Safety.Activations;
using SafeTune.Safety.Critics;
using SafeTune.Safety.Critics.Local;

namespace SafeTune.Benchmarks;

/// <summary>
/// The two local risk sources side by side, on the pairs the demo's critic scores (the demo's harmful training prompts
/// with "Sure, here is how to ..." targets, and its benign prompts with their answers): the local classifier judge
/// (MiniLM on <c>[CLS] prompt [SEP] response [SEP]</c>, max length as in its recipe) and the activation probe's
/// feature extraction (MiniLM hidden states of the prompt alone, mean over tokens then the 6 layers; the probe's
/// logistic head costs nothing beside it). Per item and per batch of 64, both on ONNX Runtime's CPU provider with 2
/// threads. The judge is the shipped one, built into its cache folder on first use (a few minutes; see
/// <see cref="LocalClassifierJudge.DefaultCacheDirectory"/>).
/// </summary>
[MemoryDiagnoser]
public class CriticBenchmarks
{
    /// <summary>Items per batch.</summary>
    public const int Batch = 64;

    private LocalClassifierJudge _judge = null!;
    private ActivationExtractor _probe = null!;
    private JudgeItem[] _items = [];
    private JudgeItem[] _one = [];
    private string[] _prompts = [];
    private string[] _onePrompt = [];
    private string _vocabDir = "";

    /// <summary>Builds or loads the judge, opens the probe's extractor and picks the items.</summary>
    [GlobalSetup]
    public void Setup()
    {
        var runtime = new SessionConfig { IntraOpThreads = 2 };
        _judge = LocalClassifierJudge.BuildOrLoad(LocalClassifierJudge.DefaultCacheDirectory, null,
            new LocalJudgeOptions { Runtime = runtime, BatchSize = Batch });
        _vocabDir = Directory.CreateTempSubdirectory("safetune-bench-").FullName;
        var tokenizer = TokenizerLoader.Load(MiniLmPackage.WriteVocab(Path.Combine(_vocabDir, "vocab.txt")));
        _probe = new ActivationExtractor(MiniLmPackage.Load(), tokenizer, null,
            new ActivationOptions { BatchSize = Batch, MaxLength = _judge.Manifest.MaxLength, Session = runtime });

        var train = DemoData.Train(7);
        var harmful = train.Where(e => e.Kind == DemoKind.Harmful).Take(Batch / 2)
            .Select(e => new JudgeItem(e.Prompt, $"Sure, here is how to {e.Intent}: first,"));
        var benign = train.Where(e => e.Kind != DemoKind.Harmful).Take(Batch / 2).Select(e => new JudgeItem(e.Prompt, e.Response));
        _items = [.. harmful.Concat(benign)];
        _one = [_items[0]];
        _prompts = [.. _items.Select(i => i.Prompt)];
        _onePrompt = [_prompts[0]];
    }

    /// <summary>The judge on one (prompt, response) pair.</summary>
    [Benchmark(Description = "Judge: 1 pair")]
    public double JudgeOne() => _judge.Score(_one)[0].Score;

    /// <summary>The judge on 64 pairs (one ONNX Runtime call).</summary>
    [Benchmark(Description = "Judge: 64 pairs")]
    public double JudgeBatch() => _judge.Score(_items)[^1].Score;

    /// <summary>The probe's features of one prompt.</summary>
    [Benchmark(Description = "Probe features: 1 prompt")]
    public float ProbeOne() => _probe.Extract(_onePrompt)[0][0];

    /// <summary>The probe's features of 64 prompts (one ONNX Runtime call).</summary>
    [Benchmark(Baseline = true, Description = "Probe features: 64 prompts")]
    public float ProbeBatch() => _probe.Extract(_prompts)[^1][0];

    /// <summary>Releases the sessions.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _judge.Dispose();
        _probe.Dispose();
        try { Directory.Delete(_vocabDir, recursive: true); } catch (IOException) { }
    }
}
