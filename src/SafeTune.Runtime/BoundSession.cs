using Microsoft.ML.OnnxRuntime;

namespace SafeTune.Runtime;

/// <summary>
/// A session with an IOBinding: inputs and outputs are bound once to OrtValues (or to device memory) and reused across
/// runs, so nothing but what the caller reads is copied between runs. Owns the session, the binding and the run options.
/// </summary>
internal sealed class BoundSession : IDisposable
{
    private readonly OrtIoBinding _binding;
    private readonly RunOptions _runOptions = new();
    private readonly OrtMemoryInfo _outputMemory;

    /// <summary>Wraps <paramref name="session"/>, taking ownership of it.</summary>
    public BoundSession(InferenceSession session, OrtMemoryInfo? outputMemory = null)
    {
        Session = session;
        _binding = session.CreateIoBinding();
        _outputMemory = outputMemory ?? OrtMemoryInfo.DefaultInstance;
    }

    public InferenceSession Session { get; }

    /// <summary>Binds an input to a caller-owned value (the caller keeps ownership).</summary>
    public void BindInput(string name, OrtValue value) => _binding.BindInput(name, value);

    /// <summary>Binds an output to a caller-owned, pre-allocated value that ONNX Runtime writes into.</summary>
    public void BindOutput(string name, OrtValue value) => _binding.BindOutput(name, value);

    /// <summary>Lets ONNX Runtime allocate an output on the session's output device.</summary>
    public void BindOutputToDevice(string name) => _binding.BindOutputToDevice(name, _outputMemory);

    /// <summary>
    /// After each run, give the CPU arena's unused memory back to the system: for a session that runs between the steps
    /// of another (a reference pass), so that its peak is not held while the other runs. Costs fresh pages on the next run.
    /// </summary>
    public void ReleaseArenaAfterRun() => _runOptions.AddRunConfigEntry("memory.enable_memory_arena_shrinkage", "cpu:0");

    /// <summary>Runs with the current bindings.</summary>
    public void Run()
    {
        _binding.SynchronizeBoundInputs();
        Session.RunWithBinding(_runOptions, _binding);
        _binding.SynchronizeBoundOutputs();
    }

    /// <summary>Runs and returns the outputs bound to device allocations; the caller owns the returned values.</summary>
    public IDisposableReadOnlyCollection<OrtValue> RunAndFetch()
    {
        Run();
        return _binding.GetOutputValues();
    }

    /// <summary>Unbinds everything.</summary>
    public void ClearBindings()
    {
        _binding.ClearBoundInputs();
        _binding.ClearBoundOutputs();
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _binding.Dispose();
        _runOptions.Dispose();
        Session.Dispose();
    }
}
