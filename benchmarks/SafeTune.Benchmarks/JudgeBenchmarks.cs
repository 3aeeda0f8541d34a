using BenchmarkDotNet.Attributes;
using Microsoft.ML.OnnxRuntime;
using SafeTune.Models.Decoders;
using SafeTune.Runtime;
using SafeTune.Safety.Critics;
using SafeTune.Serving;

namespace SafeTune.Benchmarks;

/// <summary>
/// What a Safety Critic call costs over HTTP, so that a judge can be set beside a probe: the keyword judge served by
/// SafeTune's chat server (the server of <c>safetune serve --judge keyword</c>, on 127.0.0.1 in this process) and
/// called through <see cref="OpenAiCompatibleJudge"/> with the rubric message (about 3 KB per request), for one item
/// and for a batch of 64 items with 8 requests in flight. The baseline is the same keyword judge called in-process,
/// so the ratios are the price of the HTTP round trip, the OpenAI SDK and the rubric. For scale beside a probe, the
/// forward pass of one 64-token prompt through <see cref="LlamaConfig.Tiny"/> (4 layers, width 256; random weights) in
/// an ONNX Runtime CPU session: the activations that a probe reads cost at least that at this size.
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
    private InferenceSession _forward = null!;
    private readonly RunOptions _runOptions = new();
    private long[] _ids = null!;

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
        _forward = SessionFactory.Create(LlamaGraph.Build(LlamaConfig.Tiny, seed: 0));
        var rng = new Random(1);
        _ids = [.. Enumerable.Range(0, 64).Select(_ => (long)rng.Next(LlamaConfig.Tiny.VocabSize))];
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

    /// <summary>For scale: one 64-token prompt through the tiny Llama-like decoder.</summary>
    [Benchmark(Description = "reference: forward of a 64-token prompt, LlamaConfig.Tiny")]
    public float PromptForward()
    {
        using var ids = OrtValues.Wrap(_ids, 1, _ids.Length);
        using var outputs = _forward.Run(_runOptions, ["input_ids"], [ids], ["logits"]);
        return outputs[0].GetTensorDataAsSpan<float>()[0];
    }

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
        _forward.Dispose();
        _runOptions.Dispose();
        _server.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }
}
