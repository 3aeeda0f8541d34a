using BenchmarkDotNet.Attributes;
using SafeTune.Onnx;
using SafeTune.Onnx.Shapes;

namespace SafeTune.Benchmarks;

/// <summary>
/// The ONNX IR on a real model (all-MiniLM-L6-v2, 22.7M parameters): parse, serialize, and shape inference.
/// Every operation takes milliseconds, so each iteration is one invocation; that lets shape inference run on a model
/// parsed afresh before each iteration (it annotates the model it runs on), outside the measured time.
/// </summary>
[MemoryDiagnoser]
[InvocationCount(1)]
public class OnnxGraphBenchmarks
{
    private byte[] _bytes = [];
    private Model _parsed = null!;
    private Model _fresh = null!;

    /// <summary>Reads the model bytes and parses one model for the serialization benchmark.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _bytes = Pretrained.MiniLmPackage.ModelBytes;
        _parsed = Model.FromBytes(_bytes);
    }

    /// <summary>A freshly parsed model for each shape-inference iteration.</summary>
    [IterationSetup(Target = nameof(InferShapes))]
    public void ParseFresh() => _fresh = Model.FromBytes(_bytes);

    /// <summary>Protobuf bytes to the SafeTune IR.</summary>
    [Benchmark(Baseline = true)]
    public Model Parse() => Model.FromBytes(_bytes);

    /// <summary>Types and shapes of every value, on a model just parsed.</summary>
    [Benchmark]
    public bool InferShapes() => ShapeInference.Run(_fresh);

    /// <summary>The IR back to protobuf bytes, every tensor inline.</summary>
    [Benchmark]
    public byte[] Serialize() => _parsed.ToBytes();
}
