using System.Diagnostics;
using BenchmarkDotNet.Attributes;
using SafeTune.Models.Decoders;
using SafeTune.Runtime.Training;

namespace SafeTune.Benchmarks;

/// <summary>
/// One full AdamW training step (forward, loss, backward into the flat gradient buffer, in-graph AdamW over the flat
/// parameter buffer) of the benchmark decoder (<see cref="LlamaConfig.Bench"/>, 4.26M parameters) on 8 x 128 tokens,
/// full fine-tuning and LoRA (r = 64 on every projection). <c>benchmarks/torch_side_by_side.py</c> compares the same
/// step with PyTorch.
/// </summary>
[MemoryDiagnoser]
public class TrainingStepBenchmarks
{
    private TrainingSession _session = null!;
    private TrainingSession _lora = null!;
    private TokenBatch _batch = null!;

    /// <summary>Builds the model and both sessions.</summary>
    [GlobalSetup]
    public void Setup()
    {
        var model = LlamaGraph.Build(LlamaConfig.Bench, seed: 0);
        _batch = BenchBatch.Create();
        _session = TrainingSession.Create(model, new TrainingOptions { Optimizer = new OptimizerConfig { LearningRate = 1e-3 } });
        var loraModel = Onnx.Model.FromBytes(model.ToBytes());
        var pass = new Autodiff.Lora.LoraPass(new Autodiff.Lora.LoraOptions { Rank = 64, Alpha = 16 });
        Onnx.Passes.PassRunner.Run(loraModel, pass);
        _lora = TrainingSession.Create(loraModel, new TrainingOptions { Trainable = pass.TrainableParameters, Optimizer = new OptimizerConfig { LearningRate = 1e-3 } });
    }

    /// <summary>Full fine-tuning step; returns the loss.</summary>
    [Benchmark(Baseline = true)]
    public float AdamWStep()
    {
        _session.LazyResetGrad();
        float loss = _session.TrainStep(_batch);
        _session.OptimizerStep();
        return loss;
    }

    /// <summary>LoRA step; returns the loss.</summary>
    [Benchmark]
    public float LoraAdamWStep()
    {
        _lora.LazyResetGrad();
        float loss = _lora.TrainStep(_batch);
        _lora.OptimizerStep();
        return loss;
    }

    /// <summary>Reports the peak working set and releases the sessions.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        Console.WriteLine($"// peak working set: {Process.GetCurrentProcess().PeakWorkingSet64 / (1 << 20)} MB");
        _session.Dispose();
        _lora.Dispose();
    }
}
