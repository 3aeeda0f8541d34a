using SafeTune.Onnx;

namespace SafeTune.Runtime;

/// <summary>The ONNX Runtime execution providers SafeTune supports.</summary>
public enum ExecutionProvider
{
    /// <summary>The default CPU provider (package Microsoft.ML.OnnxRuntime).</summary>
    Cpu,
    /// <summary>NVIDIA CUDA (package Microsoft.ML.OnnxRuntime.Gpu).</summary>
    Cuda,
    /// <summary>DirectML on Windows / DirectX 12 (package Microsoft.ML.OnnxRuntime.DirectML).</summary>
    DirectML,
}

/// <summary>Options for creating an ONNX Runtime session.</summary>
public sealed record SessionConfig
{
    /// <summary>The execution provider.</summary>
    public ExecutionProvider Provider { get; init; } = ExecutionProvider.Cpu;

    /// <summary>The device index for CUDA and DirectML.</summary>
    public int DeviceId { get; init; }

    /// <summary>
    /// Sets <c>session.disable_cpu_ep_fallback=1</c>: session creation fails instead of silently running nodes on the CPU
    /// when the chosen provider cannot take them. Tests use it to catch fallbacks. It has no effect on the CPU provider.
    /// </summary>
    public bool DisableCpuFallback { get; init; }

    /// <summary>
    /// Keep ONNX Runtime's CPU memory arena (default true). Without it, large temporaries (a training step's
    /// vocabulary-sized logits and their gradients, the activations of an oversized request to a served model) go back to
    /// the system as soon as they are freed, instead of staying reserved by the arena for the life of the process.
    /// </summary>
    public bool CpuMemoryArena { get; init; } = true;

    /// <summary>Intra-op threads; 0 lets ONNX Runtime choose.</summary>
    public int IntraOpThreads { get; init; }

    /// <summary>Graph optimization level.</summary>
    public Microsoft.ML.OnnxRuntime.GraphOptimizationLevel OptimizationLevel { get; init; } =
        Microsoft.ML.OnnxRuntime.GraphOptimizationLevel.ORT_ENABLE_ALL;

    /// <summary>
    /// Let ONNX Runtime plan one block for all of a run's tensors after the first run (default true). Training sessions
    /// turn it off: the planned block comes on top of the tensors whose size it could not plan (measured on a GPT-2 LoRA
    /// step: 1.82 GB peak with it, 1.29 GB without, at the same speed).
    /// </summary>
    public bool MemoryPattern { get; init; } = true;

    /// <summary>
    /// These settings as a training step wants them: no memory pattern. The CPU arena stays: without it every step's
    /// temporaries are fresh pages from the system, and a GPT-2 LoRA step took 3.0 s instead of 1.0 s. (One arena shared
    /// by the training and reference sessions, ONNX Runtime's environment allocator, made a Qwen2.5-0.5B LoRA step 25-45%
    /// slower; the reference pass gives its arena back after each run instead, see <see cref="BoundSession.ReleaseArenaAfterRun"/>.)
    /// </summary>
    public SessionConfig ForTraining() => this with { MemoryPattern = false };

    /// <summary>ONNX Runtime's log level.</summary>
    public Microsoft.ML.OnnxRuntime.OrtLoggingLevel LogLevel { get; init; } = Microsoft.ML.OnnxRuntime.OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR;

    /// <summary>Parses a provider name (cpu, cuda, dml/directml), case-insensitively.</summary>
    public static ExecutionProvider ParseProvider(string name) => name.Trim().ToLowerInvariant() switch
    {
        "cpu" => ExecutionProvider.Cpu,
        "cuda" or "gpu" => ExecutionProvider.Cuda,
        "dml" or "directml" => ExecutionProvider.DirectML,
        _ => throw new UserInputException($"unknown execution provider '{name}'; expected cpu, cuda or directml."),
    };
}

/// <summary>The chosen execution provider is not available in the ONNX Runtime build this program runs with.</summary>
public sealed class ExecutionProviderUnavailableException(string message, Exception? inner = null) : Exception(message, inner);
