using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using SafeTune.Models.Decoders;
using SafeTune.Models.Generation;

namespace SafeTune.Benchmarks;

/// <summary>
/// Greedy decoding of <see cref="NewTokens"/> tokens after a <see cref="PromptLength"/>-token prompt on
/// <see cref="LlamaConfig.Tiny"/> (random init, seed 0) in one ONNX Runtime CPU session: with the key/value cache (one
/// prefill, then one token per step) and with the plain graph re-running the whole sequence each step. The
/// <c>Tokens/s</c> column is generated tokens per second of the mean time.
/// </summary>
[MemoryDiagnoser]
[Config(typeof(TokensPerSecondConfig))]
public class GenerationBenchmarks
{
    /// <summary>Generated tokens per run.</summary>
    public const int NewTokens = 32;

    /// <summary>Prompt length.</summary>
    public const int PromptLength = 256;

    private Generator _cached = null!, _recompute = null!;
    private int[][] _prompt = null!;
    private readonly GenerationOptions _options = new() { MaxNewTokens = NewTokens };

    /// <summary>Builds both graphs and their sessions and the prompt.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _cached = new Generator(LlamaGraph.Build(LlamaConfig.Tiny, seed: 0, options: DecoderGraphOptions.WithKvCache));
        _recompute = new Generator(LlamaGraph.Build(LlamaConfig.Tiny, seed: 0));
        var rng = new Random(1);
        _prompt = [Enumerable.Range(0, PromptLength).Select(_ => rng.Next(LlamaConfig.Tiny.VocabSize)).ToArray()];
    }

    /// <summary>Greedy decoding of 32 tokens after a 256-token prompt with the key/value cache.</summary>
    [Benchmark(Baseline = true, Description = "KvCache: 32 tokens after 256")]
    public int KvCache() => _cached.Generate(_prompt, _options)[0].Tokens[^1];

    /// <summary>Greedy decoding of 32 tokens after a 256-token prompt, re-running the whole sequence each step.</summary>
    [Benchmark(Description = "Recompute: 32 tokens after 256")]
    public int Recompute() => _recompute.Generate(_prompt, _options)[0].Tokens[^1];

    /// <summary>Releases the sessions.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _cached.Dispose();
        _recompute.Dispose();
    }

    private sealed class TokensPerSecondConfig : ManualConfig
    {
        public TokensPerSecondConfig() => AddColumn(new TokensPerSecondColumn());
    }

    /// <summary>Generated tokens per second of a benchmark's mean time.</summary>
    private sealed class TokensPerSecondColumn : IColumn
    {
        public string Id => nameof(TokensPerSecondColumn);
        public string ColumnName => "Tokens/s";
        public bool AlwaysShow => true;
        public ColumnCategory Category => ColumnCategory.Custom;
        public int PriorityInCategory => 0;
        public bool IsNumeric => true;
        public UnitType UnitType => UnitType.Dimensionless;
        public string Legend => $"Generated tokens ({NewTokens}) per second of the mean time";
        public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
        public bool IsAvailable(Summary summary) => true;
        public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, summary.Style);
        public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
        {
            var mean = summary[benchmarkCase]?.ResultStatistics?.Mean;
            return mean is > 0 ? (NewTokens / (mean.Value * 1e-9)).ToString("F1", System.Globalization.CultureInfo.InvariantCulture) : "NA";
        }
    }
}
