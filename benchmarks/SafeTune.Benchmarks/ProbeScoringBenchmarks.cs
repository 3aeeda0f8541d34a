using BenchmarkDotNet.Attributes;
using SafeTune.Safety.Probes;

namespace SafeTune.Benchmarks;

/// <summary>
/// Scoring pooled activations with a probe head: the folded float32 path (<see cref="ProbeScorer"/>) for one example
/// and for a batch of 64 (reported per example), against the double-precision reference
/// (<see cref="ProbeHead.PredictProbability(ReadOnlySpan{float})"/>), at MiniLM's width (384) and a 7B model's (4096),
/// for the logistic head and the paper's MLP (hidden 512).
/// </summary>
[MemoryDiagnoser]
public class ProbeScoringBenchmarks
{
    private const int Batch = 64;
    private ProbeHead _head = null!;
    private ProbeScorer _scorer = null!;
    private float[] _one = null!, _batch = null!, _out = null!;

    /// <summary>The feature width.</summary>
    [Params(384, 4096)]
    public int Width { get; set; }

    /// <summary>The head.</summary>
    [Params(ProbeHeadKind.Logistic, ProbeHeadKind.Mlp)]
    public ProbeHeadKind Head { get; set; }

    /// <summary>Builds a head with random weights and standardisation, and random features.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _head = RandomProbe.Head(Head, Width, seed: 1);
        _scorer = _head.CreateScorer();
        var rng = new Random(2);
        _batch = [.. Enumerable.Range(0, Batch * Width).Select(_ => (float)(rng.NextDouble() * 2 - 1))];
        _one = _batch[..Width];
        _out = new float[Batch];
    }

    /// <summary>The double-precision reference path, one example.</summary>
    [Benchmark(Baseline = true, Description = "reference (double), 1 example")]
    public double Reference() => _head.PredictProbability(_one);

    /// <summary>The folded float32 path, one example.</summary>
    [Benchmark(Description = "folded float32, 1 example")]
    public float One() => _scorer.Score(_one);

    /// <summary>The folded float32 path, a batch of 64, per example.</summary>
    [Benchmark(Description = "folded float32, batch of 64 (per example)", OperationsPerInvoke = Batch)]
    public float Batch64()
    {
        _scorer.Score(_batch, _out);
        return _out[^1];
    }
}

/// <summary>Probe heads with random weights for benchmarks (only the shapes matter for timing).</summary>
internal static class RandomProbe
{
    public static ProbeHead Head(ProbeHeadKind kind, int d, int seed)
    {
        var rng = new Random(seed);
        float U(double a) => (float)((rng.NextDouble() * 2 - 1) * a);
        var s = new Standardizer([.. Enumerable.Range(0, d).Select(_ => rng.NextDouble() * 0.1)], [.. Enumerable.Range(0, d).Select(_ => 0.5 + rng.NextDouble())]);
        if (kind == ProbeHeadKind.Logistic) return new LogisticRegression(s, [.. Enumerable.Range(0, d).Select(_ => (double)U(1 / Math.Sqrt(d)))], 0.1, 1e-3);
        const int h = 512;
        return new MlpHead(s, [.. Enumerable.Range(0, h * d).Select(_ => U(1 / Math.Sqrt(d)))], [.. Enumerable.Range(0, h).Select(_ => U(0.1))],
            [.. Enumerable.Range(0, 2 * h).Select(_ => U(1 / Math.Sqrt(h)))], [0f, 0f]);
    }
}
