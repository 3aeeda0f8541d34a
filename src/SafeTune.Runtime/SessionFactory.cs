using Microsoft.ML.OnnxRuntime;
using SafeTune.Onnx;

namespace SafeTune.Runtime;

/// <summary>Creates ONNX Runtime sessions on a chosen execution provider.</summary>
internal static class SessionFactory
{
    private static readonly Dictionary<ExecutionProvider, (string ortName, string package)> Providers = new()
    {
        [ExecutionProvider.Cpu] = ("CPUExecutionProvider", "Microsoft.ML.OnnxRuntime"),
        [ExecutionProvider.Cuda] = ("CUDAExecutionProvider", "Microsoft.ML.OnnxRuntime.Gpu"),
        [ExecutionProvider.DirectML] = ("DmlExecutionProvider", "Microsoft.ML.OnnxRuntime.DirectML"),
    };

    /// <summary>The newest ai.onnx opset the ONNX Runtime SafeTune is built with runs (ONNX Runtime 1.32: opset 28).</summary>
    public const long MaxOpset = 28;

    /// <summary>Throws <see cref="OnnxFormatException"/> naming <paramref name="name"/> when the model imports an ai.onnx opset newer than <see cref="MaxOpset"/>.</summary>
    public static void RequireSupportedOpset(Model model, string name)
    {
        ArgumentNullException.ThrowIfNull(model);
        long opset = model.DefaultOpset;
        if (opset > MaxOpset)
            throw new OnnxFormatException($"{name}: imports ai.onnx opset {opset}, newer than opset {MaxOpset}, the newest this ONNX Runtime runs.");
    }

    /// <summary>The execution providers compiled into the loaded ONNX Runtime.</summary>
    public static IReadOnlyList<string> AvailableProviders => OrtEnv.Instance().GetAvailableProviders();

    /// <summary>True when the provider is compiled into the loaded ONNX Runtime.</summary>
    public static bool IsAvailable(ExecutionProvider provider) => AvailableProviders.Contains(Providers[provider].ortName);

    /// <summary>Builds session options for <paramref name="config"/>; the caller owns (disposes) them.</summary>
    public static SessionOptions CreateOptions(SessionConfig config)
    {
        var (ortName, package) = Providers[config.Provider];
        if (!IsAvailable(config.Provider))
            throw new ExecutionProviderUnavailableException(
                $"the {config.Provider} execution provider ({ortName}) is not in this ONNX Runtime build " +
                $"(available: {string.Join(", ", AvailableProviders)}). Build SafeTune against {package}: " +
                $"build.ps1 -ExecutionProvider {config.Provider}.");
        var options = new SessionOptions
        {
            GraphOptimizationLevel = config.OptimizationLevel,
            LogSeverityLevel = config.LogLevel,
            EnableCpuMemArena = config.CpuMemoryArena,
            EnableMemoryPattern = config.MemoryPattern,
        };
        try
        {
            if (config.IntraOpThreads > 0) options.IntraOpNumThreads = config.IntraOpThreads;
            // On the CPU provider every node runs on the CPU by design; ONNX Runtime refuses the setting there.
            if (config.DisableCpuFallback && config.Provider != ExecutionProvider.Cpu)
                options.AddSessionConfigEntry("session.disable_cpu_ep_fallback", "1");
            switch (config.Provider)
            {
                case ExecutionProvider.Cuda:
                    options.AppendExecutionProvider_CUDA(config.DeviceId);
                    break;
                case ExecutionProvider.DirectML:
                    // DirectML requires memory patterns off and sequential execution.
                    options.EnableMemoryPattern = false;
                    options.ExecutionMode = ExecutionMode.ORT_SEQUENTIAL;
                    options.AppendExecutionProvider_DML(config.DeviceId);
                    break;
            }
            return options;
        }
        catch (OnnxRuntimeException e)
        {
            options.Dispose();
            throw new ExecutionProviderUnavailableException($"cannot start the {config.Provider} execution provider on device {config.DeviceId}: {e.Message}", e);
        }
    }

    /// <summary>Creates a session for an in-memory model.</summary>
    public static InferenceSession Create(Model model, SessionConfig? config = null) => Create(model.ToBytes(), config);

    /// <summary>Creates a session for serialized model bytes.</summary>
    public static InferenceSession Create(byte[] modelBytes, SessionConfig? config = null)
    {
        using var options = CreateOptions(config ?? new SessionConfig());
        return new InferenceSession(modelBytes, options);
    }

    /// <summary>Creates a session for a model file (external data is resolved next to it).</summary>
    public static InferenceSession Create(string modelPath, SessionConfig? config = null)
    {
        using var options = CreateOptions(config ?? new SessionConfig());
        return new InferenceSession(modelPath, options);
    }
}
