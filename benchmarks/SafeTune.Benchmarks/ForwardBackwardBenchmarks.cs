using System.Diagnostics;
using BenchmarkDotNet.Attributes;
using SafeTune.Models.Decoders;
using SafeTune.Runtime.Training;

namespace SafeTune.Benchmarks;

/// <summary>
/// One forward + backward pass (token cross-entropy, gradients of all 4.26M parameters) of the benchmark Llama-like
/// decoder (<see cref="LlamaConfig.Bench"/>: 4 layers, width 256, 8 heads, vocabulary 4096) on a batch of 8 x 128 tokens,
/// with the backward graph SafeTune derives, in one ONNX Runtime CPU session. The peak working set of the process is
/// printed at the end (it includes ONNX Runtime's native memory, which the managed memory diagnoser does not see).
/// </summary>
[MemoryDiagnoser]
public class ForwardBackwardBenchmarks
{
    private GradientSession _session = null!;
    private TokenBatch _batch = null!;

    /// <summary>Batch size.</summary>
    [Params(8)]
    public int Batch { get; set; }

    /// <summary>Sequence length.</summary>
    [Params(128)]
    public int Sequence { get; set; }

    /// <summary>Builds the model, its training graph and the session.</summary>
    [GlobalSetup]
    public void Setup()
    {
        var model = LlamaGraph.Build(LlamaConfig.Bench, seed: 0);
        _session = GradientSession.Create(model);
        _batch = BenchBatch.Create(Batch, Sequence);
    }

    /// <summary>Forward, loss and backward; returns the loss.</summary>
    [Benchmark]
    public double ForwardBackward() => _session.Run(_batch).Loss;

    /// <summary>Reports the peak working set and releases the session.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        Console.WriteLine($"// peak working set: {Process.GetCurrentProcess().PeakWorkingSet64 / (1 << 20)} MB");
        _session.Dispose();
    }
}
