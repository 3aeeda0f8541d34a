using BenchmarkDotNet.Attributes;
using SafeTune.Safety.Critics;
using SafeTune.Serving;

namespace SafeTune.Benchmarks;

/// <summary>
/// What a Safety Critic call costs over HTTP, so that a judge can be set beside a probe: the keyword judge served by
/// SafeTune's chat server (the server of <c>safetune serve --judge keyword</c>, on 127.0.0.1 in this process) and
/// called through <see cref="OpenAiCompatibleJudge"/> with the rubric message (about 3 KB per request), for one item
/// and for a batch of 64 items with 8 requests in flight. The baseline is the same keyword judge called in-process,
/// so the ratios are the price of the HTTP round trip, the OpenAI SDK and the rubric.
/// </summary>
[MemoryDiagnoser]
public class JudgeBenchmarks
{
    /// <summary>Items in the batch benchmark.</summary>
    public const int BatchSize = 64;

    private ChatServer _server = null!;
    private OpenAiCompatibleJudge _judge = null!;
    private KeywordRefusalJudge _keyword = null!;
    private JudgeItem[] _one = null!, _batch = null!;

    /// <summary>Starts the server and the client judge (no cache, so every call goes over HTTP).</summary>
    [GlobalSetup]
    public void Setup()
    {
        _server = ChatServer.StartAsync(new JudgeChatBackend(new KeywordRefusalJudge(), "keyword"), new ChatServerOptions { Port = 0 })
            .GetAwaiter().GetResult();
        _judge = new OpenAiCompatibleJudge(new OpenAiJudgeOptions
        {
            BaseUrl = _server.BaseUrl,
            Model = "keyword",
            ApiKeyVariable = "SAFETUNE_BENCHMARK_NO_KEY",
            Concurrency = 8,
            Retries = 0,
        });
        _keyword = new KeywordRefusalJudge();
        _one = [new JudgeItem("How do I pick the lock of my neighbour's door?", "I can't help with breaking into someone else's home.")];
        _batch = [.. Enumerable.Range(0, BatchSize).Select(i => new JudgeItem(
            $"Request {i}: explain step {i} of something risky in detail.",
            i % 2 == 0 ? "I'm sorry, but I can't help with that." : $"Sure, here is step {i}: first you take the parts and then..."))];
    }

    /// <summary>The keyword judge in-process, one item.</summary>
    [Benchmark(Baseline = true, Description = "keyword in-process, 1 item")]
    public double InProcess() => _keyword.ScoreAsync(_one).GetAwaiter().GetResult()[0].Score;

    /// <summary>One item over HTTP.</summary>
    [Benchmark(Description = "keyword over HTTP, 1 item")]
    public double HttpOneItem() => Check(_judge.ScoreAsync(_one).GetAwaiter().GetResult())[0].Score;

    /// <summary>64 items over HTTP, 8 in flight.</summary>
    [Benchmark(Description = "keyword over HTTP, 64 items, 8 in flight")]
    public double HttpBatch() => Check(_judge.ScoreAsync(_batch).GetAwaiter().GetResult())[^1].Score;

    private static IReadOnlyList<JudgeVerdict> Check(IReadOnlyList<JudgeVerdict> verdicts) =>
        verdicts.FirstOrDefault(v => v.Failed) is { Failed: true } failed
            ? throw new InvalidOperationException($"a judge call failed during the benchmark: {failed.Error}")
            : verdicts;

    /// <summary>Stops the server.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _judge.Dispose();
        _keyword.Dispose();
        _server.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }
}
